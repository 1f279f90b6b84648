-- The copied rows of the versions retention expires ($expired: their ids); {mart} is a mart
-- name from the allow-list.
DELETE FROM history_rows.{mart} WHERE list_contains($expired, snapshot_id)
