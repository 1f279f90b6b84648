-- marts.{macro}(version): the rows of one retained version of a mart. A version that is not
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
CREATE OR REPLACE MACRO marts.{macro}(version) AS TABLE
SELECT h.* EXCLUDE (snapshot_id)
FROM (
    SELECT CASE
        WHEN version IS NULL THEN error(
            'no version given (NULL): the query that picks it found none, e.g. no retained '
            || 'version has that as_of: SELECT snapshot_id, as_of, stands_for_as_of FROM '
            || 'marts.snapshots WHERE expired_at IS NULL lists the versions there are'
        )
        WHEN NOT list_contains({retained}, version) THEN error(
            'version ' || version || ' is not a retained version (expired by retention, or '
            || 'never published): SELECT snapshot_id, as_of, stands_for_as_of FROM '
            || 'marts.snapshots WHERE expired_at IS NULL lists the versions there are'
        )
        ELSE version
    END AS snapshot_id
) AS chosen
INNER JOIN {rows} AS h ON h.snapshot_id = chosen.snapshot_id
