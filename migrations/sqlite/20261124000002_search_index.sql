-- Trigram full-text indexes over the lowercased columns: substring search (the reference's
-- semantics) without scanning every row. case_sensitive 1: the columns are already lowercased
-- by the server (Unicode-aware), so the index matches exactly what LIKE on them would.
CREATE VIRTUAL TABLE entities_fts USING fts5(
    name_lc, type_lc, content = 'entities', content_rowid = 'id', tokenize = 'trigram case_sensitive 1'
);
CREATE VIRTUAL TABLE observations_fts USING fts5(
    content_lc, content = 'observations', content_rowid = 'id', tokenize = 'trigram case_sensitive 1'
);

CREATE TRIGGER entities_fts_insert AFTER INSERT ON entities BEGIN
    INSERT INTO entities_fts (rowid, name_lc, type_lc) VALUES (new.id, new.name_lc, new.type_lc);
END;
CREATE TRIGGER entities_fts_delete AFTER DELETE ON entities BEGIN
    INSERT INTO entities_fts (entities_fts, rowid, name_lc, type_lc) VALUES ('delete', old.id, old.name_lc, old.type_lc);
END;
CREATE TRIGGER entities_fts_update AFTER UPDATE ON entities BEGIN
    INSERT INTO entities_fts (entities_fts, rowid, name_lc, type_lc) VALUES ('delete', old.id, old.name_lc, old.type_lc);
    INSERT INTO entities_fts (rowid, name_lc, type_lc) VALUES (new.id, new.name_lc, new.type_lc);
END;

CREATE TRIGGER observations_fts_insert AFTER INSERT ON observations BEGIN
    INSERT INTO observations_fts (rowid, content_lc) VALUES (new.id, new.content_lc);
END;
CREATE TRIGGER observations_fts_delete AFTER DELETE ON observations BEGIN
    INSERT INTO observations_fts (observations_fts, rowid, content_lc) VALUES ('delete', old.id, old.content_lc);
END;
CREATE TRIGGER observations_fts_update AFTER UPDATE ON observations BEGIN
    INSERT INTO observations_fts (observations_fts, rowid, content_lc) VALUES ('delete', old.id, old.content_lc);
    INSERT INTO observations_fts (rowid, content_lc) VALUES (new.id, new.content_lc);
END;

INSERT INTO entities_fts (entities_fts) VALUES ('rebuild');
INSERT INTO observations_fts (observations_fts) VALUES ('rebuild');
