-- In a DuckDB session over the lake (spark/lake.py::attach): {schema}.{view} (history_<mart>),
-- the rows of the mart's retained versions with their snapshot_id. {source} is the relation
-- spark/lake.py::_history_files builds (read_parquet of the versions' folders, quoted literals).
-- The caller quotes every piece.
CREATE OR REPLACE VIEW {schema}.{view} AS
SELECT * FROM {source}
