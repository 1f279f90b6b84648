-- A one-value record's new value. Parameters: $value (VARCHAR).
INSERT INTO marts.{table} VALUES ($value)
