-- In the published file: history.<mart> when no retained version has rows of {mart}, an empty
-- view of the right columns.
CREATE VIEW history.{mart} AS
SELECT CAST(NULL AS BIGINT) AS snapshot_id, * FROM marts.{mart} LIMIT 0
