-- The moved files of a source: the path each was taken in from (origin), where it is now
-- (present), and a placeholder path ($prefix || origin) its rows take on the way.
SELECT source_file AS origin, moved_to AS present, $prefix || source_file AS placeholder
FROM staging.ingested_files WHERE source = $source AND moved_to IS NOT NULL
