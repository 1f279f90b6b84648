-- The id of the version a publish writes: one after the last published (expired ones too).
SELECT coalesce(max(snapshot_id), 0) + 1 FROM marts.snapshot_log
