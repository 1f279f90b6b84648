-- The shop's time zone (ENGAGEMENT_TIME_ZONE) the staged timestamps were read in: one row, once
-- an ingest has recorded it. A warehouse staged before it was recorded read them in UTC.
CREATE TABLE IF NOT EXISTS staging.ingest_zone (time_zone VARCHAR NOT NULL)
