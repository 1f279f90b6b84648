-- The first $n rows of one version of a mart ({mart}, from the marts' own names): a
-- backfill's version is not marts.<mart>. The caller masks personal columns.
SELECT * EXCLUDE (snapshot_id) FROM history.{mart} WHERE snapshot_id = $snapshot_id LIMIT $n
