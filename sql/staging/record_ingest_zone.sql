-- Record the time zone the staged timestamps are read in from now on (after
-- sql/staging/forget_ingest_zone.sql, in the same transaction).
-- Parameters: $time_zone (VARCHAR).
INSERT INTO staging.ingest_zone VALUES ($time_zone)
