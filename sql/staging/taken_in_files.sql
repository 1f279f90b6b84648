-- Every file taken in: its source, where it is now (moved_to, else source_file), its hash and
-- stat, the path its rows were staged from, the rules it was taken in under and the rows it
-- staged and read. A warehouse whose last ingest predates moved_to and rules has neither column: the
-- caller fills the placeholders with the column, or with source_file and NULL.
SELECT source, {path}, sha256, size_bytes, mtime_ns, ctime_ns, source_file, {rules}, rows_staged,
    rows_read
FROM staging.ingested_files
