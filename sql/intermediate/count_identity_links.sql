-- The link rows: recorded with the state they were built from, and held equal to that count
-- before an incremental refresh adds to them (engagement_box/incremental.py::plan).
SELECT count(*) FROM intermediate.identity_links
