-- The staging layer holds the contracted exports' rows, their quarantine, the record of the
-- ingested files and the erasure tables.
CREATE SCHEMA IF NOT EXISTS staging
