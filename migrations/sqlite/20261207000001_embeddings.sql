-- compat: additive
-- Search by meaning: each entity's vector, with the model that made it, and the entities waiting
-- to be embedded (again). Once a server has turned embeddings on (the row in embedding_state),
-- triggers queue every entity whose text changes, whoever writes it; the indexer embeds from the
-- queue after commit, so a write never waits for a model.
CREATE TABLE embedding_state (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    model TEXT NOT NULL
);

-- rev counts the changes since the entity was queued: the indexer removes a row only at the
-- revision it embedded. leased_until (unix seconds) is an indexer's claim on the row.
CREATE TABLE embedding_queue (
    entity_id    INTEGER PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
    tenant       TEXT    NOT NULL,
    rev          INTEGER NOT NULL DEFAULT 0,
    leased_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX embedding_queue_lease ON embedding_queue (leased_until, entity_id);

-- seq orders the vectors as they were stored, so a server's in-memory index reads only the new.
CREATE TABLE entity_vectors (
    entity_id INTEGER PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
    tenant    TEXT    NOT NULL,
    model     TEXT    NOT NULL,
    vector    BLOB    NOT NULL,
    seq       INTEGER NOT NULL
);
CREATE INDEX entity_vectors_tenant_seq ON entity_vectors (tenant, seq);

CREATE TRIGGER entities_embed_insert AFTER INSERT ON entities WHEN EXISTS (SELECT 1 FROM embedding_state) BEGIN
    INSERT INTO embedding_queue (entity_id, tenant) VALUES (new.id, new.tenant)
    ON CONFLICT (entity_id) DO UPDATE SET rev = rev + 1;
END;
CREATE TRIGGER entities_embed_update AFTER UPDATE OF name, entity_type ON entities
WHEN EXISTS (SELECT 1 FROM embedding_state) BEGIN
    INSERT INTO embedding_queue (entity_id, tenant) VALUES (new.id, new.tenant)
    ON CONFLICT (entity_id) DO UPDATE SET rev = rev + 1;
END;
-- Observations deleted with their entity find no entity: the entity's vector goes with it.
CREATE TRIGGER observations_embed_insert AFTER INSERT ON observations WHEN EXISTS (SELECT 1 FROM embedding_state) BEGIN
    INSERT INTO embedding_queue (entity_id, tenant) SELECT id, tenant FROM entities WHERE id = new.entity_id
    ON CONFLICT (entity_id) DO UPDATE SET rev = rev + 1;
END;
CREATE TRIGGER observations_embed_delete AFTER DELETE ON observations WHEN EXISTS (SELECT 1 FROM embedding_state) BEGIN
    INSERT INTO embedding_queue (entity_id, tenant) SELECT id, tenant FROM entities WHERE id = old.entity_id
    ON CONFLICT (entity_id) DO UPDATE SET rev = rev + 1;
END;
CREATE TRIGGER observations_embed_update AFTER UPDATE ON observations WHEN EXISTS (SELECT 1 FROM embedding_state) BEGIN
    INSERT INTO embedding_queue (entity_id, tenant) SELECT id, tenant FROM entities WHERE id = new.entity_id
    ON CONFLICT (entity_id) DO UPDATE SET rev = rev + 1;
END;
