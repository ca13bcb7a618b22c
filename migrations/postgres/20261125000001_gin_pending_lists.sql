-- A search reads a GIN index's pending list (recent inserts not yet merged) linearly. With the
-- default 4 MB list, a one-row search at 100k entities took 6 ms after 3,000 inserts (and up to
-- 300 ms in the old query shape); a 128 kB list is merged into the index after ~100 inserts.
ALTER INDEX entities_name_trgm SET (gin_pending_list_limit = 128);
ALTER INDEX entities_type_trgm SET (gin_pending_list_limit = 128);
ALTER INDEX observations_content_trgm SET (gin_pending_list_limit = 128);
