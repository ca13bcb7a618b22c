-- compat: additive
-- Retrieval by time. Each row carries the time it was created (milliseconds since the epoch):
-- SQLite cannot add a column whose default is the current time, so this server's inserts set it,
-- and rows from before this migration (or from a writer that does not know the column) read as
-- created when history began (time_began).
--
-- What stops being true is kept: a trigger copies each deleted entity, observation and relation
-- into its history table with the time of the deletion, so every writer's deletions count. The
-- server purges history older than HISTORY_RETENTION. Ids are never reused (AUTOINCREMENT), so a
-- row keeps its place in insertion order when the graph is read as it was.
CREATE TABLE time_began (began INTEGER NOT NULL);
INSERT INTO time_began (began) VALUES (CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER));

ALTER TABLE entities ADD COLUMN created_at INTEGER;
ALTER TABLE observations ADD COLUMN created_at INTEGER;
ALTER TABLE relations ADD COLUMN created_at INTEGER;

CREATE TABLE entity_history (
    id          INTEGER NOT NULL,
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    entity_type TEXT    NOT NULL,
    name_lc     TEXT    NOT NULL,
    type_lc     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    deleted_at  INTEGER NOT NULL
);
CREATE INDEX entity_history_name ON entity_history (tenant, name);
CREATE INDEX entity_history_deleted ON entity_history (deleted_at);

-- An observation's tenant is its entity's (live or in entity_history): the entity may be deleted
-- in the same statement, so the trigger cannot look it up.
CREATE TABLE observation_history (
    id         INTEGER NOT NULL,
    entity_id  INTEGER NOT NULL,
    content    TEXT    NOT NULL,
    content_lc TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL
);
CREATE INDEX observation_history_entity ON observation_history (entity_id, id);
CREATE INDEX observation_history_deleted ON observation_history (deleted_at);

CREATE TABLE relation_history (
    id            INTEGER NOT NULL,
    tenant        TEXT    NOT NULL,
    from_name     TEXT    NOT NULL,
    to_name       TEXT    NOT NULL,
    relation_type TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    deleted_at    INTEGER NOT NULL
);
CREATE INDEX relation_history_from ON relation_history (tenant, from_name);
CREATE INDEX relation_history_to ON relation_history (tenant, to_name);
CREATE INDEX relation_history_deleted ON relation_history (deleted_at);

CREATE TRIGGER entities_history AFTER DELETE ON entities BEGIN
    INSERT INTO entity_history (id, tenant, name, entity_type, name_lc, type_lc, created_at, deleted_at)
    VALUES (old.id, old.tenant, old.name, old.entity_type, old.name_lc, old.type_lc,
            coalesce(old.created_at, (SELECT began FROM time_began)),
            CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER));
END;
CREATE TRIGGER observations_history AFTER DELETE ON observations BEGIN
    INSERT INTO observation_history (id, entity_id, content, content_lc, created_at, deleted_at)
    VALUES (old.id, old.entity_id, old.content, old.content_lc,
            coalesce(old.created_at, (SELECT began FROM time_began)),
            CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER));
END;
CREATE TRIGGER relations_history AFTER DELETE ON relations BEGIN
    INSERT INTO relation_history (id, tenant, from_name, to_name, relation_type, created_at, deleted_at)
    VALUES (old.id, old.tenant, old.from_name, old.to_name, old.relation_type,
            coalesce(old.created_at, (SELECT began FROM time_began)),
            CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER));
END;
