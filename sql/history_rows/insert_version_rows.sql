-- A version published from a whole work table: its rows copied to history_rows.{mart} with the
-- version's id ({mart}: a mart name from the allow-list).
INSERT INTO history_rows.{mart} BY NAME
SELECT $snapshot_id AS snapshot_id, *
FROM work.{mart}
