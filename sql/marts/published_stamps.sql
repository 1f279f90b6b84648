-- When each logged version was published, and its as-of: the stamp its history files carry,
-- and the as-of their rows hold (readers.py::_foreign).
SELECT snapshot_id, published_at, as_of FROM marts.snapshot_log
