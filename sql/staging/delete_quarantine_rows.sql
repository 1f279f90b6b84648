-- Drop the given quarantine rows of a source (rows_to_drop: source_file, source_row, a frame
-- registered by the caller): duplicates staged again by `orphaned_duplicates.sql`.
DELETE FROM staging.quarantine AS q
USING rows_to_drop AS d
WHERE q.source = $source AND q.source_file = d.source_file AND q.source_row = d.source_row
