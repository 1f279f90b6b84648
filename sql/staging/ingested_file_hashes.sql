-- Every staged file of a source as 'source_file:sha256', in file order, or NULL when none: with
-- the staged row count, what identifies the staged orders without reading them.
SELECT list(source_file || ':' || sha256 ORDER BY source_file)
FROM staging.ingested_files
WHERE source = $source
