-- The staged orders of each orders file (engagement_box.incremental: a step's inputs).
SELECT source_file, count(*) FROM staging.orders GROUP BY source_file ORDER BY 1
