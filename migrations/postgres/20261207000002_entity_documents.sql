-- compat: additive
-- Search by the query's words, for hybrid search: each entity's text (name, type, observations)
-- as one English tsvector, ranked by ts_rank. The indexer writes a document when it takes the
-- entity from the embedding queue.
CREATE TABLE entity_documents (
    entity_id BIGINT   PRIMARY KEY REFERENCES entities (id) ON DELETE CASCADE,
    tenant    TEXT     NOT NULL,
    document  TSVECTOR NOT NULL
);
CREATE INDEX entity_documents_search ON entity_documents USING gin (document);
