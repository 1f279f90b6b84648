-- The rows of one as-of (a partition's) of a work table ({table}: a mart name from the
-- allow-list).
SELECT count(*) FROM work.{table} WHERE as_of = $work_as_of
