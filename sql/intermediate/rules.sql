-- The identity rules, written once: how a row is matched to a customer. Every statement of
-- sql/intermediate/ (the merge, the links, the four *_resolution views) uses these macros and the
-- normalisation of normalization.sql; they live in the warehouse (schema intermediate), so the
-- views work in any session.

-- The customers' keys of one kind ('customer' | 'email' | 'handle'): the dictionary every other
-- source resolves against (built by identity_links.sql, one owner per normalised value).
create or replace macro intermediate.customer_keys(kind) as table
    select normalized_value, customer_id
    from intermediate.identity_links
    where source = 'customers' and role = kind;

-- Customer id, else email (orders, reviews, referees): by_id / by_email are the customers found
-- by the staged id and by the normalised email (NULL when none).
--   customer: the id's customer, else the email's owner, else NULL (unresolved, row kept)
--   rule:     which one decided ('customer_id' | 'email'), NULL when unresolved
--   key_type / key: the value that decided; for an unresolved row the email when there is one,
--             else the staged id
create or replace macro intermediate.id_else_email_customer(by_id, by_email) as
    coalesce(by_id, by_email);

create or replace macro intermediate.id_else_email_rule(by_id, by_email) as
    case
        when by_id is not null then 'customer_id'
        when by_email is not null then 'email'
    end;

create or replace macro intermediate.id_else_email_key_type(by_id, email_key) as
    case when by_id is null and email_key is not null then 'email' else 'customer_id' end;

create or replace macro intermediate.id_else_email_key(by_id, email_key, raw_id) as
    case when by_id is null and email_key is not null then email_key else raw_id end;

-- One key only (referrers by id, social actors and targets by handle): the rule when it matched.
create or replace macro intermediate.matched_rule(customer_id, rule) as
    case when customer_id is not null then rule end;
