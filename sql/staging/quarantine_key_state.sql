-- The quarantine's rows by their keys (`readers.quarantine_state`): the row hashes are summed,
-- not xor-ed, so two equal rows do not cancel out. Filled by the caller (a template):
-- {quarantine} is staging.quarantine, or <database>.staging.quarantine of an attached file.
SELECT
    count(*),
    sum(CAST(hash(source, source_file, source_row, run_id, quarantined_at, reason) AS HUGEINT))
FROM {quarantine}
