-- How many profiles became how many people (intermediate.customer_merge), for the asset's metadata.
select
    count(*) as profiles,
    count(distinct resolved_customer_id) as people,
    count(*) filter (where customer_id <> resolved_customer_id) as profiles_merged_into_another,
    (
        select count(*) from intermediate.resolved_customers where profile_count > 1
    ) as people_with_several_profiles,
    coalesce((select max(profile_count) from intermediate.resolved_customers), 0)
        as most_profiles_of_one_person
from intermediate.customer_merge
