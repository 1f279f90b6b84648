-- The rows of history.{mart} in the versions retention expires ($expired: their ids); {mart} is
-- a mart name from the allow-list.
SELECT count(*) FROM history.{mart} WHERE list_contains($expired, snapshot_id)
