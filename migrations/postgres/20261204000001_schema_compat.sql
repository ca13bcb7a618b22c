-- compat: additive
-- What each migration does to binaries that do not know it (its `-- compat:` line, recorded by
-- `migrate` before it applies the migration; storage/compat.rs), and the replicas running now
-- with the newest migration each knows (their heartbeat), so `migrate` can refuse one that
-- would break a replica still serving.
CREATE TABLE mcp_schema_compat (
    version BIGINT PRIMARY KEY,
    compat  TEXT   NOT NULL CHECK (compat IN ('additive', 'contract', 'breaking')),
    expand  BIGINT CHECK ((compat = 'contract') = (expand IS NOT NULL))
);

CREATE TABLE mcp_replicas (
    id                   TEXT        PRIMARY KEY,
    newest_known_version BIGINT      NOT NULL,
    last_seen            TIMESTAMPTZ NOT NULL
);
