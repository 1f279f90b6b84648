-- The time zone the staged timestamps were read in (no row: none recorded yet).
SELECT time_zone FROM staging.ingest_zone
