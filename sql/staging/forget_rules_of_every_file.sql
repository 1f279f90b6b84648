-- Every file taken in is to be taken in again (its rows were read in another time zone): as
-- after an upgrade of the ingest's rules, each is taken in again, once, as a changed file.
UPDATE staging.ingested_files SET rules = NULL
