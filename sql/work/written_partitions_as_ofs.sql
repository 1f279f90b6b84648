-- The as-ofs each work table was written for (engagement_box.partitioned's record).
SELECT table_name, as_of FROM work.written_partitions
