-- New rows reach the FTS5 trigram indexes in batches instead of one by one. An FTS5 insert
-- flushes a new index segment at every commit and merges segments now and then: that was three
-- quarters of a create_entities transaction's time in SQLite (~330 of ~430 µs at 10k entities,
-- p99 7 ms), against ~15 µs a row when 128 rows go in at once.
--
-- Rows with an id above their table's mark are not indexed yet: search matches them with LIKE
-- (ids only grow, so they are one range of the primary key), and the write that takes a table's
-- tail past 128 rows indexes it and moves the mark (storage/batch.rs). Deletes and updates
-- still reach the index at once, for rows it holds.
CREATE TABLE search_index_marks (
    name       TEXT    PRIMARY KEY,
    indexed_to INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO search_index_marks (name, indexed_to)
VALUES ('entities', (SELECT coalesce(max(id), 0) FROM entities)),
       ('observations', (SELECT coalesce(max(id), 0) FROM observations));

DROP TRIGGER entities_fts_insert;
DROP TRIGGER entities_fts_delete;
DROP TRIGGER entities_fts_update;
DROP TRIGGER observations_fts_insert;
DROP TRIGGER observations_fts_delete;
DROP TRIGGER observations_fts_update;

CREATE TRIGGER entities_fts_delete AFTER DELETE ON entities
WHEN old.id <= (SELECT indexed_to FROM search_index_marks WHERE name = 'entities') BEGIN
    INSERT INTO entities_fts (entities_fts, rowid, name_lc, type_lc) VALUES ('delete', old.id, old.name_lc, old.type_lc);
END;
CREATE TRIGGER entities_fts_update AFTER UPDATE ON entities BEGIN
    INSERT INTO entities_fts (entities_fts, rowid, name_lc, type_lc)
    SELECT 'delete', old.id, old.name_lc, old.type_lc
    WHERE old.id <= (SELECT indexed_to FROM search_index_marks WHERE name = 'entities');
    INSERT INTO entities_fts (rowid, name_lc, type_lc)
    SELECT new.id, new.name_lc, new.type_lc
    WHERE new.id <= (SELECT indexed_to FROM search_index_marks WHERE name = 'entities');
END;

CREATE TRIGGER observations_fts_delete AFTER DELETE ON observations
WHEN old.id <= (SELECT indexed_to FROM search_index_marks WHERE name = 'observations') BEGIN
    INSERT INTO observations_fts (observations_fts, rowid, content_lc) VALUES ('delete', old.id, old.content_lc);
END;
CREATE TRIGGER observations_fts_update AFTER UPDATE ON observations BEGIN
    INSERT INTO observations_fts (observations_fts, rowid, content_lc)
    SELECT 'delete', old.id, old.content_lc
    WHERE old.id <= (SELECT indexed_to FROM search_index_marks WHERE name = 'observations');
    INSERT INTO observations_fts (rowid, content_lc)
    SELECT new.id, new.content_lc
    WHERE new.id <= (SELECT indexed_to FROM search_index_marks WHERE name = 'observations');
END;
