-- Delete the rows whose {column} holds one of the person's keys of kind $kind (normalised).
-- {schema}, {table} and {column} come from information_schema, checked by quote_identifier and
-- limited to the identifying columns' allow-list. Returns the number of rows deleted.
DELETE FROM {schema}.{table}
WHERE erasure_holds({column}, $values::VARCHAR[], $kind)
