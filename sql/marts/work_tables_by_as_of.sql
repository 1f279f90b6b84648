-- The base tables of `work` with an `as_of` column (DATE, as in history_rows.from_work): the
-- tables whose rows are kept per as-of, which retention trims
-- (engagement_box/governance/versions.py::trim_work).
SELECT c.table_name
FROM information_schema.columns AS c
INNER JOIN information_schema.tables AS t
    ON t.table_catalog = c.table_catalog
    AND t.table_schema = c.table_schema
    AND t.table_name = c.table_name
WHERE c.table_schema = 'work'
    AND c.column_name = 'as_of'
    AND c.data_type = 'DATE'
    AND t.table_type = 'BASE TABLE'
    AND c.table_catalog = current_database()
ORDER BY c.table_name
