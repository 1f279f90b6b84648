-- Whitespace (tabs, newlines, no-break spaces too) removed at both ends, like polars'
-- str.strip_chars() in the ingest; trim() would only remove spaces. For this connection only.
CREATE OR REPLACE TEMP MACRO erasure_trimmed(value) AS
    regexp_replace(CAST(value AS VARCHAR), '^[\s\p{Z}]+|[\s\p{Z}]+$', '', 'g')
