-- compat: additive
-- What each migration does to binaries that do not know it (its `-- compat:` line, recorded by
-- `migrate` before it applies the migration; storage/compat.rs).
CREATE TABLE mcp_schema_compat (
    version INTEGER PRIMARY KEY,
    compat  TEXT    NOT NULL CHECK (compat IN ('additive', 'contract', 'breaking')),
    expand  INTEGER CHECK ((compat = 'contract') = (expand IS NOT NULL))
);
