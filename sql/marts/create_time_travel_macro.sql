-- marts.{macro}(version): the rows of history.{mart} of one retained version. A version that
-- is not retained (expired by retention, or never published) is an error that says so, not an
-- empty result an analyst could take for a version without rows.
CREATE OR REPLACE MACRO marts.{macro}(version) AS TABLE
SELECT * EXCLUDE (snapshot_id)
FROM history.{mart}
WHERE snapshot_id = version
  AND (
      SELECT CASE
          WHEN count(*) = 0 THEN error(
              'version ' || version || ' is not a retained version (expired by retention, or '
              || 'never published): SELECT snapshot_id, as_of FROM marts.snapshots '
              || 'WHERE expired_at IS NULL lists the versions there are'
          )
          ELSE true
      END
      FROM marts.snapshots
      WHERE snapshot_id = version AND expired_at IS NULL
  )
