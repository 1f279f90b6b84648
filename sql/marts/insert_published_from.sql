-- In the published file: which working database built it, and where.
-- Parameters: $id (the warehouse id), $working (its path), $published (this file's path).
INSERT INTO marts.published_from VALUES ($id, $working, $published)
