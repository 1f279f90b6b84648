-- The retained versions as a list (empty when there is none): what marts.<mart>_at checks a
-- version against in the working database ({retained} of create_time_travel_macro.sql).
coalesce(
    (SELECT list(snapshot_id) FROM marts.snapshots WHERE expired_at IS NULL),
    CAST([] AS BIGINT[])
)
