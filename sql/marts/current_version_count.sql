-- Asked of the published file: a file that answers opens as DuckDB and holds the current version.
SELECT count(*) FROM marts.current_version
