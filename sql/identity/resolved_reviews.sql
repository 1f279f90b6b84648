-- Staged reviews with the resolved author (customer_id NULL when unresolved).
select
    r.review_id,
    l.customer_id,
    l.match_rule,
    r.product_id,
    r.rating,
    r.helpful_votes,
    r.verified_purchase,
    r.created_at
from staging.reviews as r
left join intermediate.identity_links as l
    on l.source = 'reviews' and l.role = 'author' and l.source_key = r.review_id
