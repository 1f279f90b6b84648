INSERT INTO staging.erasure_log
    (request_id, subject_hashes, requested_at, rows_deleted, salt_fingerprint)
VALUES ($request_id, $subject_hashes, $requested_at, $rows_deleted, $salt_fingerprint)
