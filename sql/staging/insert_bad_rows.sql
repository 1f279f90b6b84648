-- Quarantine rows (bad_rows, a frame registered by the caller, in the quarantine's columns).
INSERT INTO staging.quarantine SELECT * FROM bad_rows
