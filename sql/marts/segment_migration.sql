-- Customers moving between RFM segments and between CLV x CRV quadrants from one version to
-- another, with the engagement value (CEV) they carry in each. '(none)' = not in that version.
-- '(unvalued)' = in that version, but every completed order of theirs lacked an FX rate: no
-- customer_rfm row, and in engagement_value a NULL CEV (with the CLV) and quadrant (but CEV
-- Costly Referrers, which holds whatever the CLV); their CEV adds nothing to cev_from/cev_to.
-- One row per customer of either version first (its segment, quadrant and CEV in each), then
-- both dimensions are counted from it.
-- $renamed_from / $renamed_to: segments renamed, earlier name -> name now (rfm.SEGMENT_RENAMES):
-- both versions' segments are read under today's names, so a rename alone moves no one.
with value_from as (
    select customer_id, coalesce(quadrant, '(unvalued)') as quadrant, cev
    from history.engagement_value
    where snapshot_id = $from_snapshot
),
value_to as (
    select customer_id, coalesce(quadrant, '(unvalued)') as quadrant, cev
    from history.engagement_value
    where snapshot_id = $to_snapshot
),
renamed as (
    select
        snapshot_id,
        customer_id,
        coalesce(($renamed_to::varchar[])[list_position($renamed_from::varchar[], segment)], segment)
            as segment
    from history.customer_rfm
    where snapshot_id in ($from_snapshot, $to_snapshot)
),
rfm_from as (
    select customer_id, segment from renamed where snapshot_id = $from_snapshot
    union all
    select customer_id, '(unvalued)' as segment from value_from where cev is null
),
rfm_to as (
    select customer_id, segment from renamed where snapshot_id = $to_snapshot
    union all
    select customer_id, '(unvalued)' as segment from value_to where cev is null
),
segments as (
    select customer_id, f.segment as segment_from, t.segment as segment_to
    from rfm_from as f
    full outer join rfm_to as t using (customer_id)
),
quadrants as (
    select
        customer_id,
        f.quadrant as quadrant_from,
        t.quadrant as quadrant_to,
        f.cev as cev_from,
        t.cev as cev_to
    from value_from as f
    full outer join value_to as t using (customer_id)
),
customers as (
    select
        customer_id,
        s.customer_id is not null as in_segments,
        q.customer_id is not null as in_quadrants,
        s.segment_from,
        s.segment_to,
        q.quadrant_from,
        q.quadrant_to,
        q.cev_from,
        q.cev_to
    from segments as s
    full outer join quadrants as q using (customer_id)
),
moves as (
    select
        'rfm_segment' as dimension,
        coalesce(segment_from, '(none)') as from_value,
        coalesce(segment_to, '(none)') as to_value,
        cev_from,
        cev_to
    from customers
    where in_segments
    union all
    select
        'quadrant' as dimension,
        coalesce(quadrant_from, '(none)') as from_value,
        coalesce(quadrant_to, '(none)') as to_value,
        cev_from,
        cev_to
    from customers
    where in_quadrants
)
select
    cast($from_snapshot as bigint) as from_snapshot,
    cast($to_snapshot as bigint) as to_snapshot,
    dimension,
    from_value,
    to_value,
    from_value <> to_value as moved,
    count(*) as customers,
    coalesce(sum(cev_from), 0) as cev_from,
    coalesce(sum(cev_to), 0) as cev_to
from moves
group by all
order by dimension, customers desc, from_value, to_value
