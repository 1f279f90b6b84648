-- The identifying columns of one staged source ({columns}: names from
-- erasure.SUBJECT_COLUMNS and the source's lists; {table}: the source's name, from the
-- allow-list): the keys a register's erasures are looked for in (erasure.register_requests).
SELECT DISTINCT {columns} FROM staging.{table}
