-- history_rows.{mart} with work.{mart}'s columns and the version's id, empty: created with the
-- first version of the mart ({mart}: a mart name from the allow-list).
CREATE TABLE history_rows.{mart} AS
SELECT CAST(NULL AS BIGINT) AS snapshot_id, *
FROM work.{mart}
LIMIT 0
