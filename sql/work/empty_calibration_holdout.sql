-- No rows, with work.calibration_holdout's columns but as_of (the caller stamps it).
SELECT * EXCLUDE (as_of) FROM work.calibration_holdout LIMIT 0
