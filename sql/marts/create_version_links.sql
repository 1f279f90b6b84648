-- The versions whose rows of a mart are the work rows of one as-of, where the run wrote them:
-- `history.<mart>` shows work.<mart>'s rows of `as_of` under `snapshot_id` (a version's rows are
-- written once). Before a step replaces those work rows (a rerun of the as-of), they are copied
-- to `history_rows.<mart>` and the link is deleted (versions.keep_published_rows); retention
-- deletes the links of expired versions, then the work rows of as-ofs no link keeps
-- (versions.trim_work).
CREATE TABLE IF NOT EXISTS history_rows.from_work (
    snapshot_id BIGINT NOT NULL,
    mart        VARCHAR NOT NULL,
    as_of       DATE NOT NULL,
    PRIMARY KEY (snapshot_id, mart)
)
