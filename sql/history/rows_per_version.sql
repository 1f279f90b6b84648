-- The rows each version of {mart} has now (an erasure may have removed some since its publish).
SELECT snapshot_id, count(*) FROM history.{mart} GROUP BY ALL
