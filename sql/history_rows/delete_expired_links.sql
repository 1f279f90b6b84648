-- The links of the versions retention expires ($expired: their ids) to their work rows; the
-- work rows go with the as-ofs no link keeps (versions.trim_work).
DELETE FROM history_rows.from_work WHERE list_contains($expired, snapshot_id)
