-- The rows of the as-ofs retention trims ($trimmed) from work.{table} (versions.trim_work).
DELETE FROM work.{table} WHERE list_contains($trimmed, as_of)
