-- In the published file: history.<mart>, the retained versions' Parquet files. Filled by the
-- caller (a template): {mart} the quoted mart name, {source} the relation reading the files
-- (`readers._version_files`: paths as literals, the columns in the dictionary's order).
CREATE VIEW history.{mart} AS SELECT * FROM {source}
