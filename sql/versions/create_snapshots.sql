-- One row per publish. `tables` maps each mart to its row count in this version; `is_current`
-- says whether this publish became `marts.*` (a backfill of an earlier month does not).
-- `expired_at` is set when retention drops the version's rows from `history.*`.
CREATE TABLE IF NOT EXISTS marts.snapshots (
    snapshot_id   BIGINT PRIMARY KEY,
    published_at  TIMESTAMP NOT NULL,
    run_id        VARCHAR,
    partition_key VARCHAR,
    as_of         DATE,
    settings      JSON,
    "tables"      JSON,
    is_current    BOOLEAN,
    expired_at    TIMESTAMP
)
