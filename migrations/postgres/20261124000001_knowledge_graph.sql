-- The knowledge graph, one per tenant. Ids give insertion order, which every read preserves.
-- *_lc columns hold Unicode-lowercased copies (made by the server) for case-insensitive search;
-- trigram indexes serve the substring search (LIKE '%q%') that the reference's search semantics need.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE entities (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    name_lc     TEXT NOT NULL,
    type_lc     TEXT NOT NULL,
    UNIQUE (tenant, name)
);
CREATE INDEX entities_name_trgm ON entities USING gin (name_lc gin_trgm_ops);
CREATE INDEX entities_type_trgm ON entities USING gin (type_lc gin_trgm_ops);

CREATE TABLE observations (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity_id  BIGINT NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    content    TEXT   NOT NULL,
    content_lc TEXT   NOT NULL
);
CREATE INDEX observations_entity ON observations (entity_id, id);
CREATE INDEX observations_content_trgm ON observations USING gin (content_lc gin_trgm_ops);

CREATE TABLE relations (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        TEXT NOT NULL,
    from_name     TEXT NOT NULL,
    to_name       TEXT NOT NULL,
    relation_type TEXT NOT NULL,
    UNIQUE (tenant, from_name, to_name, relation_type)
);
CREATE INDEX relations_to ON relations (tenant, to_name);
