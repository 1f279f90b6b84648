-- One row per export file taken in: how many rows it had and where they went. A file whose path
-- and content hash are here is not read again; a changed file replaces its earlier rows.
CREATE TABLE IF NOT EXISTS staging.ingested_files (
    source           VARCHAR   NOT NULL,
    source_file      VARCHAR   NOT NULL,
    sha256           VARCHAR   NOT NULL,
    size_bytes       BIGINT    NOT NULL,
    mtime_ns         BIGINT    NOT NULL,
    rows_read        BIGINT    NOT NULL,
    rows_staged      BIGINT    NOT NULL,
    rows_quarantined BIGINT    NOT NULL,
    run_id           VARCHAR,
    ingested_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (source, source_file)
)
