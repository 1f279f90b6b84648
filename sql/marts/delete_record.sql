-- A one-value record emptied before its new value is written (same transaction).
DELETE FROM marts.{table}
