-- staging.quarantine as the published file holds it (as sql/marts/published_quarantine.sql),
-- when the file analysts have holds some of its rows masked: those are copied (`held_before`,
-- sql/marts/quarantine_held_before.sql) and only the others are masked now, by the caller
-- (`masked_quarantine`: row_id, raw_values, detail). A row is masked once, when it is first
-- published, not again with every day's new rows. Written into the published file being built,
-- attached as {database}.
CREATE TABLE {database}.staging.quarantine AS
WITH masked AS (
    SELECT row_id, CAST(raw_values AS JSON) AS raw_values, detail FROM masked_quarantine
    UNION ALL
    SELECT row_id, raw_values, detail FROM held_before
)

SELECT q.* REPLACE (m.raw_values AS raw_values, m.detail AS detail)
FROM staging.quarantine AS q
INNER JOIN masked AS m ON m.row_id = q.rowid
ORDER BY q.rowid
