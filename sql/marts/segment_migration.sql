-- Customers moving between RFM segments and between CLV x CRV quadrants from one version to
-- another, with the engagement value (CEV) they carry in each. '(none)' = not in that version.
with rfm_from as (
    select customer_id, segment from history.customer_rfm where snapshot_id = $from_snapshot
),
rfm_to as (
    select customer_id, segment from history.customer_rfm where snapshot_id = $to_snapshot
),
value_from as (
    select customer_id, quadrant, cev from history.engagement_value
    where snapshot_id = $from_snapshot
),
value_to as (
    select customer_id, quadrant, cev from history.engagement_value
    where snapshot_id = $to_snapshot
),
segment_moves as (
    select
        'rfm_segment' as dimension,
        coalesce(f.segment, '(none)') as from_value,
        coalesce(t.segment, '(none)') as to_value,
        customer_id
    from rfm_from as f
    full outer join rfm_to as t using (customer_id)
),
quadrant_moves as (
    select
        'quadrant' as dimension,
        coalesce(f.quadrant, '(none)') as from_value,
        coalesce(t.quadrant, '(none)') as to_value,
        customer_id
    from value_from as f
    full outer join value_to as t using (customer_id)
),
moves as (
    select * from segment_moves
    union all
    select * from quadrant_moves
)
select
    cast($from_snapshot as bigint) as from_snapshot,
    cast($to_snapshot as bigint) as to_snapshot,
    m.dimension,
    m.from_value,
    m.to_value,
    m.from_value <> m.to_value as moved,
    count(*) as customers,
    coalesce(sum(vf.cev), 0) as cev_from,
    coalesce(sum(vt.cev), 0) as cev_to
from moves as m
left join value_from as vf using (customer_id)
left join value_to as vt using (customer_id)
group by all
order by m.dimension, customers desc, m.from_value, m.to_value
