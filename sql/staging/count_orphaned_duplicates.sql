-- How many rows orphaned_duplicates.sql (or its composite form, filled in by the caller) finds.
SELECT count(*) FROM ({orphans})
