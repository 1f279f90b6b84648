-- Every version recorded, expired ones included (retention only marks a version expired).
SELECT snapshot_id FROM marts.snapshot_log
