-- Every file taken in: its source, where it is now (moved_to, else source_file), its hash and
-- stat, the path its rows were staged from, the rules it was taken in under and the rows it
-- staged and read, when it was first taken in and when its present content was. A warehouse
-- whose last ingest predates moved_to, rules, first_taken_in and content_taken_in has none of
-- them: the caller fills the placeholders with the column, or with source_file, NULL, NULL and
-- ingested_at.
SELECT source, {path}, sha256, size_bytes, mtime_ns, ctime_ns, source_file, {rules}, rows_staged,
    rows_read, {first}, {content}
FROM staging.ingested_files
