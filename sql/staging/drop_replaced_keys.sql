-- The keys the changed files staged before, once compared (create_replaced_keys.sql).
DROP TABLE replaced_keys
