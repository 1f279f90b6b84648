-- One placeholder an erasure did not follow, and how many of the person's staged profiles carried
-- it (sql/erasure/create_erased_placeholder_carriers.sql).
INSERT INTO staging.erased_placeholder_carriers (request_id, kind, key_hash, carriers)
VALUES ($request_id, $kind, $key_hash, $carriers)
