-- Whether a file is a warehouse from before the working database: it holds the pipeline's own
-- schemas (work or intermediate), not just the published copy.
SELECT count(*) FROM information_schema.schemata
WHERE catalog_name = current_database() AND schema_name IN ('work', 'intermediate')
