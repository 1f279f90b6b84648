-- In the published file: which working database built it, as the warehouse id that database
-- keeps (copied with it when a warehouse is copied or moved) and its path, and where this file
-- was built. A run whose working database is another one that still exists is refused before it
-- replaces this file where it was built (`readers.foreign_working_problem`).
CREATE TABLE marts.published_from (
    warehouse_id VARCHAR NOT NULL,
    working_database VARCHAR NOT NULL,
    published_file VARCHAR NOT NULL
)
