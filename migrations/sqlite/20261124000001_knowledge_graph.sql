-- The knowledge graph, one per tenant. Ids give insertion order, which every read preserves.
-- *_lc columns hold Unicode-lowercased copies (made by the server) for case-insensitive search.
CREATE TABLE entities (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    entity_type TEXT    NOT NULL,
    name_lc     TEXT    NOT NULL,
    type_lc     TEXT    NOT NULL,
    UNIQUE (tenant, name)
);

CREATE TABLE observations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_id  INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    content    TEXT    NOT NULL,
    content_lc TEXT    NOT NULL
);
CREATE INDEX observations_entity ON observations (entity_id, id);

CREATE TABLE relations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        TEXT NOT NULL,
    from_name     TEXT NOT NULL,
    to_name       TEXT NOT NULL,
    relation_type TEXT NOT NULL,
    UNIQUE (tenant, from_name, to_name, relation_type)
);
CREATE INDEX relations_to ON relations (tenant, to_name);
