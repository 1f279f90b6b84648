-- The as-ofs whose work rows a retained version links.
SELECT DISTINCT as_of FROM history_rows.from_work
