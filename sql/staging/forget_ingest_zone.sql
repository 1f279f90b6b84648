-- The time zone recorded before, replaced by sql/staging/record_ingest_zone.sql.
DELETE FROM staging.ingest_zone
