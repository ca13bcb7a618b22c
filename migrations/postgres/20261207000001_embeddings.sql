-- compat: additive
-- Search by meaning: each entity's vector, with the model that made it, and the entities waiting
-- to be embedded (again). Once a server has turned embeddings on (the row in embedding_state),
-- triggers queue every entity whose text changes, whoever writes it; the indexer embeds from the
-- queue after commit, so a write never waits for a model.
CREATE TABLE embedding_state (
    id    INT  PRIMARY KEY CHECK (id = 1),
    model TEXT NOT NULL
);

-- rev counts the changes since the entity was queued: the indexer removes a row only at the
-- revision it embedded. leased_until (unix seconds) is an indexer's claim on the row, so each
-- change is embedded once across replicas.
CREATE TABLE embedding_queue (
    entity_id    BIGINT PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
    tenant       TEXT   NOT NULL,
    rev          BIGINT NOT NULL DEFAULT 0,
    leased_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX embedding_queue_lease ON embedding_queue (leased_until, entity_id);

-- seq orders the vectors as they were committed (the indexer takes an advisory lock from taking
-- its numbers to its commit), so a server's in-memory index reads only the new.
CREATE SEQUENCE entity_vectors_seq;
CREATE TABLE entity_vectors (
    entity_id BIGINT PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
    tenant    TEXT   NOT NULL,
    model     TEXT   NOT NULL,
    vector    BYTEA  NOT NULL,
    seq       BIGINT NOT NULL
);
CREATE INDEX entity_vectors_tenant_seq ON entity_vectors (tenant, seq);

-- Statement-level, as the version triggers: a 1,000-entity create queues in one statement.
CREATE FUNCTION embedding_queue_entities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM embedding_state) THEN
        INSERT INTO embedding_queue AS q (entity_id, tenant) SELECT id, tenant FROM changed_rows
        ON CONFLICT (entity_id) DO UPDATE SET rev = q.rev + 1;
    END IF;
    RETURN NULL;
END $$;

-- Observations deleted with their entity find no entity: the entity's vector goes with it.
CREATE FUNCTION embedding_queue_observations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM embedding_state) THEN
        INSERT INTO embedding_queue AS q (entity_id, tenant)
        SELECT e.id, e.tenant FROM (SELECT DISTINCT entity_id FROM changed_rows) AS o
        JOIN entities e ON e.id = o.entity_id
        ON CONFLICT (entity_id) DO UPDATE SET rev = q.rev + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER entities_embed_insert AFTER INSERT ON entities
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION embedding_queue_entities();
CREATE TRIGGER entities_embed_update AFTER UPDATE ON entities
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION embedding_queue_entities();
CREATE TRIGGER observations_embed_insert AFTER INSERT ON observations
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION embedding_queue_observations();
CREATE TRIGGER observations_embed_delete AFTER DELETE ON observations
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION embedding_queue_observations();
CREATE TRIGGER observations_embed_update AFTER UPDATE ON observations
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION embedding_queue_observations();
