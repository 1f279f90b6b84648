-- Staged reviews with the resolved author (customer_id NULL when unresolved).
select
    review_id,
    customer_id,
    match_rule,
    product_id,
    rating,
    helpful_votes,
    verified_purchase,
    created_at
from intermediate.reviews_resolution
