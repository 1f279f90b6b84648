-- Every publish, expired ones too, in order (the view analysts read).
SELECT * FROM marts.snapshots ORDER BY snapshot_id
