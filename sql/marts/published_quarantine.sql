-- staging.quarantine as the published file holds it: raw_values and detail masked, personal
-- fields (emails, handles) word by word and every email and @handle in the other values, as the
-- run's messages mask them (`j***@gmail.com`, `@j***`, `J*** D***`). The
-- caller registers `masked_quarantine` (row_id, raw_values, detail): each row's values masked
-- one by one after decoding (engagement_box/governance/privacy.py `masked_json`, `masked_text`),
-- joined back here by the row's rowid. Analysts open that file; the rows as read stay in the
-- working database, and source_file / source_row find them in the export.
-- Written into the published file being built, attached as {database}.
CREATE TABLE {database}.staging.quarantine AS
SELECT q.* REPLACE (CAST(m.raw_values AS JSON) AS raw_values, m.detail AS detail)
FROM staging.quarantine AS q
INNER JOIN masked_quarantine AS m ON m.row_id = q.rowid
ORDER BY q.rowid
