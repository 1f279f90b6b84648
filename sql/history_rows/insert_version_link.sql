-- A version published from one as-of's work rows: they stay where the run wrote them, linked
-- (sql/marts/create_version_links.sql).
INSERT INTO history_rows.from_work VALUES ($snapshot_id, $mart, $as_of)
