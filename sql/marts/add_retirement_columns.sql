-- A snapshot log of an earlier release gets the columns `engagement-box retire` writes (NULL for
-- every version until one is retired): versions.ensure_version_tables runs it once.
ALTER TABLE marts.snapshot_log ADD COLUMN IF NOT EXISTS retired_at TIMESTAMP;
ALTER TABLE marts.snapshot_log ADD COLUMN IF NOT EXISTS retired_reason VARCHAR
