-- Each tenant's graph version and entity count, so a server can tell with one small read whether
-- its in-memory copy of a graph is current. Triggers keep them, so every writer counts (every
-- replica, psql, an older release).
--
-- A tenant's version is the sum of its rows: each statement that changes its graph adds 1 to the
-- row of the backend that runs it (slot = pg_backend_pid()). One row per tenant would be locked
-- by every write from its statement to its commit, and a tenant's writes, across all replicas,
-- would wait for each other's WAL flush in turn; no two live backends share a row. The sum only
-- grows (rows of backends gone are folded into slot 0, never dropped), so a copy loaded at sum V
-- is current while the sum is V: each write committed since adds at least 1.
CREATE TABLE graph_versions (
    tenant   TEXT   NOT NULL,
    slot     INT    NOT NULL,
    version  BIGINT NOT NULL,
    entities BIGINT NOT NULL,
    PRIMARY KEY (tenant, slot)
);

-- Adds one version to each tenant named, and its entity delta (tenants given once per changed row).
-- PL/pgSQL, not SQL: a SQL function's statement is planned again on every call (~1 ms a write).
CREATE FUNCTION graph_versions_add(tenants TEXT[], deltas BIGINT[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO graph_versions AS v (tenant, slot, version, entities)
    SELECT c.tenant, pg_backend_pid(), 1, sum(c.delta) FROM unnest(tenants, deltas) AS c(tenant, delta)
    WHERE c.tenant IS NOT NULL GROUP BY c.tenant
    ON CONFLICT (tenant, slot) DO UPDATE SET version = v.version + 1, entities = v.entities + excluded.entities;
END $$;

-- Statement-level, with transition tables: a 1,000-entity create bumps each tenant once, not 1,000 times.
CREATE FUNCTION graph_versions_entities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM graph_versions_add(array_agg(tenant), array_agg(1::bigint)) FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM graph_versions_add(array_agg(tenant), array_agg(-1::bigint)) FROM old_rows;
    ELSE
        PERFORM graph_versions_add(array_agg(tenant), array_agg(delta))
        FROM (SELECT tenant, -1::bigint AS delta FROM old_rows UNION ALL SELECT tenant, 1 FROM new_rows) AS changed;
    END IF;
    RETURN NULL;
END $$;

-- An observation's tenant is its entity's, found with one index probe a row (joined, the planner,
-- which knows nothing of a transition table's size, scanned and hashed every entity: 0.8 ms a
-- write at 30k entities). Observations deleted with their entity (ON DELETE CASCADE) find none:
-- the entity's deletion counted that change.
CREATE FUNCTION graph_versions_observations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM graph_versions_add(array_agg(tenant), array_agg(0::bigint))
        FROM (SELECT (SELECT e.tenant FROM entities e WHERE e.id = o.entity_id) AS tenant FROM new_rows o) AS changed;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM graph_versions_add(array_agg(tenant), array_agg(0::bigint))
        FROM (SELECT (SELECT e.tenant FROM entities e WHERE e.id = o.entity_id) AS tenant FROM old_rows o) AS changed;
    ELSE
        PERFORM graph_versions_add(array_agg(tenant), array_agg(0::bigint))
        FROM (SELECT (SELECT e.tenant FROM entities e WHERE e.id = o.entity_id) AS tenant
              FROM (SELECT entity_id FROM old_rows UNION ALL SELECT entity_id FROM new_rows) AS o) AS changed;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION graph_versions_relations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM graph_versions_add(array_agg(tenant), array_agg(0::bigint)) FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM graph_versions_add(array_agg(tenant), array_agg(0::bigint)) FROM old_rows;
    ELSE
        PERFORM graph_versions_add(array_agg(tenant), array_agg(0::bigint))
        FROM (SELECT tenant FROM old_rows UNION ALL SELECT tenant FROM new_rows) AS changed;
    END IF;
    RETURN NULL;
END $$;

-- TRUNCATE has no transition table: every tenant changed (and, for entities, has none left).
CREATE FUNCTION graph_versions_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM graph_versions_add(array_agg(tenant), array_agg(CASE WHEN TG_TABLE_NAME = 'entities' THEN -held ELSE 0 END))
    FROM (SELECT tenant, sum(entities)::bigint AS held FROM graph_versions GROUP BY tenant) AS t;
    RETURN NULL;
END $$;

-- The triggers first: creating one locks its table against writes until this migration commits,
-- so the counts below miss no write.
CREATE TRIGGER entities_inserted AFTER INSERT ON entities
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_entities();
CREATE TRIGGER entities_deleted AFTER DELETE ON entities
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_entities();
CREATE TRIGGER entities_updated AFTER UPDATE ON entities
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_entities();
CREATE TRIGGER observations_inserted AFTER INSERT ON observations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_observations();
CREATE TRIGGER observations_deleted AFTER DELETE ON observations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_observations();
CREATE TRIGGER observations_updated AFTER UPDATE ON observations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_observations();
CREATE TRIGGER relations_inserted AFTER INSERT ON relations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_relations();
CREATE TRIGGER relations_deleted AFTER DELETE ON relations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_relations();
CREATE TRIGGER relations_updated AFTER UPDATE ON relations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_relations();
CREATE TRIGGER entities_truncated AFTER TRUNCATE ON entities
    FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_truncated();
CREATE TRIGGER observations_truncated AFTER TRUNCATE ON observations
    FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_truncated();
CREATE TRIGGER relations_truncated AFTER TRUNCATE ON relations
    FOR EACH STATEMENT EXECUTE FUNCTION graph_versions_truncated();

INSERT INTO graph_versions (tenant, slot, version, entities)
SELECT tenant, 0, 1, sum(n) FROM (
    SELECT tenant, count(*) AS n FROM entities GROUP BY tenant
    UNION ALL SELECT tenant, 0 FROM relations GROUP BY tenant
) AS held GROUP BY tenant;
