-- One row per export file taken in: how many rows it had and where they went. A file whose path
-- and content hash are here is not read again; a changed file replaces its earlier rows.
-- size_bytes, mtime_ns, ctime_ns: the file's stat when last seen. The same three mean the same
-- file without reading it; any other (ctime moves with every write, and no tool sets it back,
-- as cp -p, rsync -t and unzip set the mtime) means its hash decides.
-- moved_to: where the file is now when it was moved or renamed after it was taken in (into an
-- archive folder, say); NULL: at source_file. Its rows keep source_file, the path they were
-- staged from, so versions and incremental steps see nothing new, until a new file comes to
-- that path or the moved file changes: its rows then take the path it is at.
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
    ctime_ns         BIGINT,
    PRIMARY KEY (source, source_file)
);
-- A warehouse from before ctime_ns: NULL, so each file's hash decides once.
ALTER TABLE staging.ingested_files ADD COLUMN IF NOT EXISTS ctime_ns BIGINT;
-- A warehouse from before moved_to: no file was moved.
ALTER TABLE staging.ingested_files ADD COLUMN IF NOT EXISTS moved_to VARCHAR;
-- rules: the version of the ingest's rules the file was taken in under
-- (engagement_box.staging.contracts.STAGING_RULES; NULL: before it was recorded). A file
-- taken in under other rules is taken in again.
ALTER TABLE staging.ingested_files ADD COLUMN IF NOT EXISTS rules INTEGER;
-- first_taken_in: when the file at this path (or the file moved to it) was first taken in, kept
-- when it is taken in again (changed, moved, other rules): the keys of one ingest's files rank
-- by it, then by path, so a later file never takes a key an earlier one staged, whatever their
-- names. NULL (a warehouse from before it): ingested_at stands for it.
ALTER TABLE staging.ingested_files ADD COLUMN IF NOT EXISTS first_taken_in TIMESTAMP;
-- content_taken_in: when the file's present content (its sha256) was first taken in, kept when
-- the same content is taken in again (moved, other rules): a later customers file's marketing
-- consent ranks by it (sql/staging/later_profile_consents.sql), so an opt-out edited into an
-- older file outranks a repeat in a file taken in before the edit. NULL (a warehouse from
-- before it): ingested_at stands for it.
ALTER TABLE staging.ingested_files ADD COLUMN IF NOT EXISTS content_taken_in TIMESTAMP
