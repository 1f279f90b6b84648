-- A table of the working database copied into the published file being built (attached as
-- {database}): a mart whose current version has no rows, or one of readers.PUBLISHED_TABLES.
CREATE TABLE {database}.{schema}.{table} AS SELECT * FROM {schema}.{table}
