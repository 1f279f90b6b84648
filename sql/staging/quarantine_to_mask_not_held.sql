-- sql/staging/quarantine_to_mask.sql, only the rows the file analysts have does not hold (the
-- temp table `held_before`: sql/marts/quarantine_held_before.sql): a day's new quarantine rows,
-- not the whole quarantine again.
SELECT rowid, CAST(raw_values AS VARCHAR), detail, "column" FROM staging.quarantine
WHERE rowid NOT IN (SELECT row_id FROM held_before)
