-- The record of a file taken in: its hash, stat and row counts, the run and rules, and when the
-- file at its path was first taken in ($first: this run's time for a new file) and when its
-- present content was ($content: this run's time for new content).
INSERT INTO staging.ingested_files (
    source, source_file, sha256, size_bytes, mtime_ns, rows_read, rows_staged, rows_quarantined,
    run_id, ingested_at, ctime_ns, rules, first_taken_in, content_taken_in
) VALUES (
    $source, $file, $sha, $size, $mtime, $read, $staged, $quarantined, $run, $at, $ctime, $rules,
    $first, $content
)
