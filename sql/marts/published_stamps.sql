-- When each logged version was published: the stamp its history files carry (readers.py::_foreign).
SELECT snapshot_id, published_at FROM marts.snapshot_log
