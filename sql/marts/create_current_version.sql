-- The version `marts.*` holds. The primary key on a column that can only be true allows one row
-- at most, so a second current version cannot be stored. (No foreign key to snapshot_log:
-- DuckDB's COPY FROM DATABASE, used by erasure's compact, may copy this table first and fail on
-- it. Every publish that moves `marts.*` writes its log row and this row in one transaction.)
CREATE TABLE IF NOT EXISTS marts.current_version (
    singleton   BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    snapshot_id BIGINT NOT NULL
)
