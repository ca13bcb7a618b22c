-- Each tenant's graph version and entity count, bumped by every change to its entities,
-- observations or relations. Triggers do it, so every writer counts (this server, another process
-- on the same file, an older release, the sqlite3 shell): a server checks with one primary-key
-- read whether its in-memory copy of a graph is still current.
CREATE TABLE graph_versions (
    tenant   TEXT    PRIMARY KEY,
    version  INTEGER NOT NULL,
    entities INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO graph_versions (tenant, version, entities) SELECT tenant, 1, count(*) FROM entities GROUP BY tenant;

CREATE TRIGGER entities_version_insert AFTER INSERT ON entities BEGIN
    INSERT INTO graph_versions (tenant, version, entities) VALUES (new.tenant, 1, 1)
    ON CONFLICT (tenant) DO UPDATE SET version = version + 1, entities = entities + 1;
END;
CREATE TRIGGER entities_version_delete AFTER DELETE ON entities BEGIN
    UPDATE graph_versions SET version = version + 1, entities = entities - 1 WHERE tenant = old.tenant;
END;
CREATE TRIGGER entities_version_update AFTER UPDATE ON entities BEGIN
    UPDATE graph_versions SET version = version + 1, entities = entities - 1 WHERE tenant = old.tenant;
    INSERT INTO graph_versions (tenant, version, entities) VALUES (new.tenant, 1, 1)
    ON CONFLICT (tenant) DO UPDATE SET version = version + 1, entities = entities + 1;
END;

CREATE TRIGGER observations_version_insert AFTER INSERT ON observations BEGIN
    UPDATE graph_versions SET version = version + 1
    WHERE tenant = (SELECT tenant FROM entities WHERE id = new.entity_id);
END;
CREATE TRIGGER observations_version_delete AFTER DELETE ON observations BEGIN
    UPDATE graph_versions SET version = version + 1
    WHERE tenant = (SELECT tenant FROM entities WHERE id = old.entity_id);
END;
CREATE TRIGGER observations_version_update AFTER UPDATE ON observations BEGIN
    UPDATE graph_versions SET version = version + 1
    WHERE tenant IN (SELECT tenant FROM entities WHERE id IN (old.entity_id, new.entity_id));
END;

CREATE TRIGGER relations_version_insert AFTER INSERT ON relations BEGIN
    INSERT INTO graph_versions (tenant, version, entities) VALUES (new.tenant, 1, 0)
    ON CONFLICT (tenant) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER relations_version_delete AFTER DELETE ON relations BEGIN
    UPDATE graph_versions SET version = version + 1 WHERE tenant = old.tenant;
END;
CREATE TRIGGER relations_version_update AFTER UPDATE ON relations BEGIN
    UPDATE graph_versions SET version = version + 1 WHERE tenant IN (old.tenant, new.tenant);
END;
