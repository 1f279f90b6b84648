-- One version's cohort retention rows (history.cohort_retention), for its heatmap.
SELECT * FROM history.cohort_retention WHERE snapshot_id = $snapshot_id
