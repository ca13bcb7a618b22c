-- compat: additive
-- Search by the query's words, for hybrid search: each entity's text (name, type, observations)
-- as one FTS5 document, stemmed (porter), ranked by bm25. The indexer writes a document when it
-- takes the entity from the embedding queue; tenant_key (a hash of the tenant, one token) keeps a
-- query within its tenant inside the index.
CREATE VIRTUAL TABLE entity_documents USING fts5(tenant_key, document, tokenize = 'porter unicode61');

CREATE TRIGGER entities_document_delete AFTER DELETE ON entities BEGIN
    DELETE FROM entity_documents WHERE rowid = old.id;
END;
