-- A compared mart's columns as compared_rows.sql reads them (no row): `mart` is quoted by the
-- caller, `exclude` is the mart's EXCLUDE of compare.COMPARED_MARTS (or empty).
SELECT *{exclude} FROM marts.{mart} LIMIT 0
