-- Whether a file that staged rows was taken in under other ingest rules than $rules (or before
-- rules were recorded): its rows were checked against the erasure log under those rules, and
-- stay staged as they read then when the file is no longer in the exports folder.
SELECT count(*) > 0
FROM staging.ingested_files
WHERE rows_staged > 0 AND rules IS DISTINCT FROM $rules
