-- The working quarantine's rows that the published file analysts have now (attached as
-- {previous}) holds, by the keys `readers.quarantine_state` hashes (source, file, row, run,
-- time, reason), with their values and detail as that file holds them: masked when they were
-- first published, copied into the next file (sql/marts/published_quarantine_rows.sql).
-- A temp table of the session building the file, dropped when it is built.
CREATE OR REPLACE TEMP TABLE held_before AS
SELECT q.rowid AS row_id, p.raw_values, p.detail
FROM staging.quarantine AS q
INNER JOIN (
    SELECT *
    FROM {previous}.staging.quarantine
    QUALIFY row_number() OVER (
        PARTITION BY source, source_file, source_row, run_id, quarantined_at, reason
    ) = 1
) AS p
    ON p.source = q.source
    AND p.source_file = q.source_file
    AND p.source_row = q.source_row
    AND p.run_id IS NOT DISTINCT FROM q.run_id
    AND p.quarantined_at IS NOT DISTINCT FROM q.quarantined_at
    AND p.reason = q.reason
