-- One row per publish. `tables` maps each mart to its row count in this version.
CREATE TABLE IF NOT EXISTS marts.snapshots (
    snapshot_id   BIGINT PRIMARY KEY,
    published_at  TIMESTAMP NOT NULL,
    run_id        VARCHAR,
    partition_key VARCHAR,
    as_of         DATE,
    settings      JSON,
    "tables"      JSON
)
