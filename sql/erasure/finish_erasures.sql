-- Record erasure requests ($ids) as finished: their files are rewritten.
INSERT INTO staging.erasure_finished
SELECT request_id, $at FROM staging.erasure_log WHERE list_contains($ids::VARCHAR[], request_id)
ON CONFLICT DO NOTHING
