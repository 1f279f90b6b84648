-- staging.quarantine as the published file holds it: every email address and @handle in the raw
-- values and the detail masked as the messages mask them (`j***@gmail.com`, `@j***`:
-- engagement_box/governance/privacy.py `masked_text`, whose patterns are bound here as
-- $email/$email_mask and $handle/$handle_mask). Analysts open that file; the rows as read stay
-- in the working database, and source_file / source_row find them in the export.
SELECT * REPLACE (
    CAST(
        regexp_replace(
            regexp_replace(CAST(raw_values AS VARCHAR), $email, $email_mask, 'g'),
            $handle,
            $handle_mask,
            'g'
        ) AS JSON
    ) AS raw_values,
    regexp_replace(regexp_replace(detail, $email, $email_mask, 'g'), $handle, $handle_mask, 'g')
        AS detail
)
FROM staging.quarantine
