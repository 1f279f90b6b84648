-- The staging layer: typed, validated rows of the raw exports, plus the bookkeeping of ingest.
CREATE SCHEMA IF NOT EXISTS staging
