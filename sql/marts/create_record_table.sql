-- The table of a one-value record (`readers._record`; sql/marts/recorded_value.sql).
CREATE TABLE IF NOT EXISTS marts.{table} ({column} VARCHAR)
