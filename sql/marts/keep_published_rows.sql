-- The rows of every version linked to work.{mart}'s rows of $as_of, copied to
-- history_rows.{mart} with the version's id, before a step replaces those work rows.
-- {mart} is a mart name from assets/publish.py::MARTS, checked by quote_identifier.
INSERT INTO history_rows.{mart} BY NAME
SELECT link.snapshot_id, w.*
FROM work.{mart} AS w
JOIN history_rows.from_work AS link ON link.as_of = w.as_of
WHERE link.mart = $mart AND w.as_of = $as_of
