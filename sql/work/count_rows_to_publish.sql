-- The rows of a whole work table ({table}: a mart name from the allow-list).
SELECT count(*) FROM work.{table}
