-- The parts of an earlier as-of's engagement values that come from reviews and social events
-- alone: CKV (ckv_reviews, review_count, ckv_ideas) and the social points (total and per
-- platform), for the customers with any of them (the others get 0, as in a full computation).
select
    customer_id,
    ckv_reviews,
    review_count,
    ckv_ideas,
    columns('^social_points')
from work.engagement_value
where as_of = $previous_as_of
  and (
      review_count <> 0 or ckv_reviews <> 0 or ckv_ideas <> 0
      or list_max(list_transform(list_value(*columns('^social_points')), x -> abs(x))) > 0
  )
