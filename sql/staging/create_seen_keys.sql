-- The keys an ingest must not stage again, kept apart from the staged table so that checking a
-- batch scans one plain column instead of the whole compressed table: the keys staged by
-- earlier ingests (seed_seen_keys.sql), then each batch's staged keys, added by the appending
-- thread.
CREATE OR REPLACE TEMP TABLE seen_keys (key_value VARCHAR, staged_before BOOLEAN)
