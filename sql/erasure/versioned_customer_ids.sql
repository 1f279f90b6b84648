-- Every customer id one versioned mart's retained versions hold ({table}: a name from
-- versioned_customer_tables.sql): erasure.register_requests looks through them, since a person
-- erased in a newer warehouse may be in a restored one's versions only.
SELECT DISTINCT customer_id FROM history.{table}
