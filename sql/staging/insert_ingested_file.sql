-- The record of a file taken in: its hash, stat and row counts, the run and rules.
INSERT INTO staging.ingested_files (
    source, source_file, sha256, size_bytes, mtime_ns, rows_read, rows_staged, rows_quarantined,
    run_id, ingested_at, ctime_ns, rules
) VALUES (
    $source, $file, $sha, $size, $mtime, $read, $staged, $quarantined, $run, $at, $ctime, $rules
)
