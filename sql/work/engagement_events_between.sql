-- Reviews and social events dated after the end of one as-of day and up to the end of another:
-- what the engagement values of the later as-of count that those of the earlier did not.
select
    (
        select count(*) from staging.reviews
        where created_at >= $after_end and created_at < $until_end
    ) as reviews,
    (
        select count(*) from staging.social
        where occurred_at >= $after_end and occurred_at < $until_end
    ) as social
