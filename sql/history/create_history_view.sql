-- In the published file: history.<mart>, the retained versions' Parquet files. Filled by the
-- caller (a template): {mart} the quoted mart name, {source} the relation reading the files
-- (`readers._version_files`: paths as literals, the columns in the dictionary's order, and
-- an error where a file says another warehouse wrote it), {present} the condition that every
-- version the file lists still has its file (an error naming those deleted since otherwise).
CREATE VIEW history.{mart} AS SELECT * FROM {source} WHERE {present}
