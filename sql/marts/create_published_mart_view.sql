-- In the published file: marts.<mart>, a view over the current version's Parquet file with the
-- columns of the working marts.<mart>. Filled by the caller (a template): {mart} the quoted mart
-- name, {columns} the quoted column names read from the catalog, {path} the file as a literal
-- (a view binds no parameter).
CREATE VIEW marts.{mart} AS SELECT {columns} FROM read_parquet({path})
