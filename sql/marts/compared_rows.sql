-- A compared mart's rows of the current version, sorted (governance/compare.py): `mart` is
-- quoted by the caller, `exclude` is the mart's EXCLUDE of compare.COMPARED_MARTS (or empty).
SELECT *{exclude} FROM marts.{mart} ORDER BY ALL
