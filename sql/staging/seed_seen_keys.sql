-- The keys staged by earlier ingests (the rows of the files being re-ingested are deleted
-- already). Run only when the staged table has rows: see the note on empty
-- inserts in `_Appender._append` (pipelines/ingestion.py). {table} and {key}
-- come from the contracts' allow-list.
INSERT INTO seen_keys SELECT {key}, true FROM staging.{table}
