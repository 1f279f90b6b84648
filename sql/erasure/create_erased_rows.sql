-- Staged or quarantined rows removed by an erasure (or kept out by the ingest's suppression of
-- erased people), per source and export file. The ingest reconciliation reads it: rows read =
-- rows staged + rows quarantined + rows erased. A re-ingested (changed) file drops its rows here
-- together with its staged and quarantined rows (see delete_erased_rows_of_files.sql).
CREATE TABLE IF NOT EXISTS staging.erased_rows (
    source      VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    rows        BIGINT  NOT NULL,
    PRIMARY KEY (source, source_file)
)
