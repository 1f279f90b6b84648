-- Repeated keys wait here, typed as staged, to be quarantined with their staged values: an
-- empty temp table of the staged table's columns ({columns}) and a detail.
CREATE OR REPLACE TEMP TABLE duplicate_rows AS
SELECT '' AS detail, {columns} FROM staging.{table} LIMIT 0
