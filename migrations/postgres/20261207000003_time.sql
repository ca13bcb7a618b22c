-- compat: additive
-- Retrieval by time. Each row carries the time it was created (milliseconds since the epoch, the
-- transaction's start on the database's clock); rows from before this migration carry the time
-- it ran, when history began (time_began).
--
-- What stops being true is kept: statement-level triggers copy each deleted entity, observation
-- and relation into its history table with the time of the deletion, so every writer's deletions
-- count. The server purges history older than HISTORY_RETENTION. Ids are never reused (identity
-- columns), so a row keeps its place in insertion order when the graph is read as it was.
CREATE FUNCTION time_now_ms() RETURNS BIGINT LANGUAGE sql STABLE AS $$
    SELECT floor(extract(epoch FROM now()) * 1000)::bigint
$$;

CREATE TABLE time_began (began BIGINT NOT NULL);
INSERT INTO time_began (began) VALUES (time_now_ms());

-- A stable default: existing rows take this statement's time without the table being rewritten.
ALTER TABLE entities ADD COLUMN created_at BIGINT NOT NULL DEFAULT time_now_ms();
ALTER TABLE observations ADD COLUMN created_at BIGINT NOT NULL DEFAULT time_now_ms();
ALTER TABLE relations ADD COLUMN created_at BIGINT NOT NULL DEFAULT time_now_ms();

CREATE TABLE entity_history (
    id          BIGINT NOT NULL,
    tenant      TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    entity_type TEXT   NOT NULL,
    name_lc     TEXT   NOT NULL,
    type_lc     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT NOT NULL
);
CREATE INDEX entity_history_name ON entity_history (tenant, name);
CREATE INDEX entity_history_deleted ON entity_history (deleted_at);

-- An observation's tenant is its entity's (live or in entity_history): deleted with its entity
-- (ON DELETE CASCADE), the entity is already gone when the trigger runs.
CREATE TABLE observation_history (
    id         BIGINT NOT NULL,
    entity_id  BIGINT NOT NULL,
    content    TEXT   NOT NULL,
    content_lc TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL
);
CREATE INDEX observation_history_entity ON observation_history (entity_id, id);
CREATE INDEX observation_history_deleted ON observation_history (deleted_at);

CREATE TABLE relation_history (
    id            BIGINT NOT NULL,
    tenant        TEXT   NOT NULL,
    from_name     TEXT   NOT NULL,
    to_name       TEXT   NOT NULL,
    relation_type TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    deleted_at    BIGINT NOT NULL
);
CREATE INDEX relation_history_from ON relation_history (tenant, from_name);
CREATE INDEX relation_history_to ON relation_history (tenant, to_name);
CREATE INDEX relation_history_deleted ON relation_history (deleted_at);

-- Statement-level, as the version triggers: one insert for a statement's deleted rows.
CREATE FUNCTION entities_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO entity_history (id, tenant, name, entity_type, name_lc, type_lc, created_at, deleted_at)
    SELECT id, tenant, name, entity_type, name_lc, type_lc, created_at, time_now_ms() FROM old_rows;
    RETURN NULL;
END $$;
CREATE FUNCTION observations_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO observation_history (id, entity_id, content, content_lc, created_at, deleted_at)
    SELECT id, entity_id, content, content_lc, created_at, time_now_ms() FROM old_rows;
    RETURN NULL;
END $$;
CREATE FUNCTION relations_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO relation_history (id, tenant, from_name, to_name, relation_type, created_at, deleted_at)
    SELECT id, tenant, from_name, to_name, relation_type, created_at, time_now_ms() FROM old_rows;
    RETURN NULL;
END $$;

CREATE TRIGGER entities_history AFTER DELETE ON entities
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION entities_history();
CREATE TRIGGER observations_history AFTER DELETE ON observations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION observations_history();
CREATE TRIGGER relations_history AFTER DELETE ON relations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION relations_history();
