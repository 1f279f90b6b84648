-- One row per publish, kept after the version expires (audit trail). `tables` maps each mart to
-- its row count when the version was published (an erasure later deletes rows, not counts);
-- `inputs_fingerprint` is the hash of what the version was computed from (see
-- versions.inputs_fingerprint); `expired_at` is set when retention drops the version's rows from
-- `history.*`, or when `engagement-box retire` retired the version (then also `retired_at` and
-- the operator's `retired_reason`; add_retirement_columns.sql gives an older log the two).
-- Analysts read it through the view `marts.snapshots`.
CREATE TABLE IF NOT EXISTS marts.snapshot_log (
    snapshot_id        BIGINT PRIMARY KEY,
    published_at       TIMESTAMP NOT NULL,
    run_id             VARCHAR,
    partition_key      VARCHAR,
    as_of              DATE,
    settings           JSON,
    "tables"           JSON,
    inputs_fingerprint VARCHAR,
    expired_at         TIMESTAMP,
    retired_at         TIMESTAMP,
    retired_reason     VARCHAR
)
