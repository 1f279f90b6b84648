-- In the published file: marts.<mart>, a view over the current version's Parquet file with the
-- columns of the working marts.<mart>. Filled by the caller (a template): {mart} the quoted mart
-- name, {columns} the quoted column names read from the catalog, {path} the file as a literal
-- (a view binds no parameter), {written_here} the condition that the file is this warehouse's
-- (an error where its metadata says another warehouse wrote it: `readers._written_here`).
CREATE VIEW marts.{mart} AS SELECT {columns} FROM read_parquet({path}) WHERE {written_here}
