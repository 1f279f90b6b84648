-- The erasure requests whose files are rewritten too: the versions' Parquet files, the
-- published file and the audience files. A request in staging.erasure_log but not here was
-- stopped after its commit (killed, the machine down); the next publish checks every history
-- file and the next audience step writes the files again, then record it here
-- (`engagement_box/governance/readers.py::unfinished_erasures`).
CREATE TABLE IF NOT EXISTS staging.erasure_finished (
    request_id  VARCHAR   NOT NULL PRIMARY KEY,
    finished_at TIMESTAMP NOT NULL
)
