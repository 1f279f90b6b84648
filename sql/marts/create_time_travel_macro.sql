-- marts.<mart>_at(version): the rows of one retained version of a mart. A version that is not
-- retained (expired by retention, or never published), or NULL (a subquery that found no
-- version, e.g. by an as-of no version has, or a None bound from Python), is an error that says
-- so, not an empty result an analyst could take for a version without rows. The version is
-- checked in a one-row relation the rows are joined to, so the check runs even when the version
-- is a constant NULL (a filter `snapshot_id = NULL` let the optimizer drop it).
--
-- The two pieces filled in below (`rows` and `retained`): the relation of every retained
-- version's rows, with snapshot_id, and the list of retained versions. In the working database
-- `history.<mart>` and a subquery of marts.snapshots; in the published file the Parquet files
-- and the list itself, so that the body names none of the file's tables: a macro's table names
-- bind where it is called, and an analyst may ATTACH the file under any name
-- (engagement_box/governance/versions.py `time_travel_macro`).
--
-- The version is read through text (`number`), so that a date or a text given for it is a
-- message too: `list_contains` of a DATE failed to bind, with DuckDB's words about templates.
-- The third piece (`deleted`): in the published file, the versions whose file is gone since
-- the session opened it (retention, an erasure) are an error that says so; empty in the
-- working database.
CREATE OR REPLACE MACRO marts.{macro}(version) AS TABLE
SELECT h.* EXCLUDE (snapshot_id)
FROM (
    SELECT CASE
        WHEN version IS NULL THEN error(
            'no version given (NULL): the query that picks it found none: no retained '
            || 'version has that as_of, or the one that has it no longer stands for it '
            || '(stands_for_as_of false: a later run replaced it; give its snapshot_id). '
            || 'SELECT snapshot_id, as_of, stands_for_as_of FROM marts.snapshots WHERE '
            || 'expired_at IS NULL lists the versions there are'
        )
        WHEN NOT regexp_full_match(typeof(version), '(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)')
        THEN error(
            'marts.{label} takes a version (a snapshot_id), not a ' || typeof(version)
            || ': to pick one by date, marts.{label}((SELECT snapshot_id FROM marts.snapshots '
            || 'WHERE as_of = DATE ''2026-06-30'' AND stands_for_as_of))'
        )
        WHEN number IS NULL OR NOT list_contains({retained}, number) THEN error(
            'version ' || CAST(version AS VARCHAR) || ' is not a retained version (expired by '
            || 'retention or retired by hand, never published, or published after this session '
            || 'opened the file: to see it, close every connection to the file in this '
            || 'process, then connect again): SELECT snapshot_id, as_of, stands_for_as_of FROM '
            || 'marts.snapshots WHERE expired_at IS NULL lists the versions there are'
        ){deleted}
        ELSE number
    END AS snapshot_id
    FROM (SELECT TRY_CAST(CAST(version AS VARCHAR) AS BIGINT) AS number) AS given
) AS chosen
INNER JOIN {rows} AS h ON h.snapshot_id = chosen.snapshot_id
