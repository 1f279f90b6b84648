-- In the published file: which working database built it, and where (one row,
-- sql/marts/create_published_from.sql).
SELECT * FROM marts.published_from
