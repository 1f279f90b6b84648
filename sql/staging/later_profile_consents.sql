-- The marketing consent of a staged profile where a later customers file says otherwise than
-- the staged row (docs/CONTRACTS.md, "Marketing consent in a later file"). A profile's key is
-- staged once (its first row; every other attribute stays as that row says), and a repeat is
-- quarantined as duplicate_key with its values as staged (raw_values). Consent is opt-in, so the
-- latest word wins: the profile's rows (staged and repeated) rank by when their file's present
-- content was taken in (staging.ingested_files.content_taken_in: an opt-out edited into the
-- first file outranks a repeat in a file taken in before the edit; ingested_at before it was
-- recorded), then by the file's first taking-in, then path; the
-- consent of the latest file's rows is the profile's, false when any of them says false or none
-- says (a row repeated within one file is ambiguous: the restrictive answer). A later true after
-- a false is a re-consent and is honoured the same way. The rows follow their files: a replaced
-- file's rows are its new ones, an erased person's rows are gone.
-- {content}: f.content_taken_in, or NULL in a warehouse the ingest has not given it yet (the
-- caller, engagement_box/governance/versions.py).
-- Columns: customer_id, marketing_consent (the profile's consent now), source_file and
-- source_row (the first row of the deciding file), only where it differs from the staged row's.
with repeated as (
    select
        json_extract_string(raw_values, '$.customer_id') as customer_id,
        try_cast(json_extract_string(raw_values, '$.marketing_consent') as boolean)
            as marketing_consent,
        source_file,
        source_row
    from staging.quarantine
    where source = 'customers' and reason = 'duplicate_key'
),

profile_rows as (
    select customer_id, marketing_consent, source_file, source_row
    from staging.customers
    where customer_id in (select customer_id from repeated)
    union all
    select customer_id, marketing_consent, source_file, source_row
    from repeated
),

ranked as (
    select
        r.*,
        rank() over (
            partition by r.customer_id
            order by
                coalesce({content}, f.ingested_at) desc nulls last,
                coalesce(f.first_taken_in, f.ingested_at) desc nulls last,
                r.source_file desc
        ) as file_rank
    from profile_rows as r
    left join staging.ingested_files as f
        on f.source = 'customers' and f.source_file = r.source_file
),

latest as (
    select
        customer_id,
        bool_and(coalesce(marketing_consent, false)) as marketing_consent,
        min(source_file) as source_file,
        min(source_row) as source_row
    from ranked
    where file_rank = 1
    group by customer_id
)

select l.customer_id, l.marketing_consent, l.source_file, l.source_row
from latest as l
inner join staging.customers as c on c.customer_id = l.customer_id
where l.marketing_consent is distinct from coalesce(c.marketing_consent, false)
order by l.customer_id
