-- erased_placeholder_keys.sql where no erasure left a placeholder's carriers to count (nothing to
-- hash, no profile key to group): the same temporary table, empty.
create or replace temp table erased_placeholder_keys as
select cast(null as varchar) as key_type, cast(null as varchar) as key
where false
