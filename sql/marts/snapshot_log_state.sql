-- The versions' part of the published file's token (`readers.state`): the newest version, how
-- many expired, and the current one. Any publish, retention or adoption changes it.
SELECT
    max(snapshot_id),
    count(expired_at),
    (SELECT max(snapshot_id) FROM marts.current_version)
FROM marts.snapshot_log
