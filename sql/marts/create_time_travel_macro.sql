-- marts.{macro}(version): the rows of history.{mart} of one retained version. A version that
-- is not retained (expired by retention, or never published), or NULL (a subquery that found
-- no version, e.g. by an as-of no version has), is an error that says so, not an empty result
-- an analyst could take for a version without rows.
CREATE OR REPLACE MACRO marts.{macro}(version) AS TABLE
SELECT * EXCLUDE (snapshot_id)
FROM history.{mart}
WHERE snapshot_id = version
  AND (
      SELECT CASE
          WHEN count(*) = 0 THEN error(
              CASE
                  WHEN version IS NULL THEN 'no version given (NULL): the query that picks it '
                      || 'found none, e.g. no retained version has that as_of'
                  ELSE 'version ' || version || ' is not a retained version (expired by '
                      || 'retention, or never published)'
              END
              || ': SELECT snapshot_id, as_of FROM marts.snapshots WHERE expired_at IS NULL '
              || 'lists the versions there are'
          )
          ELSE true
      END
      FROM marts.snapshots
      WHERE snapshot_id = version AND expired_at IS NULL
  )
