-- work: checked results of the latest run; marts: the latest published version;
-- history: every retained version (views); history_rows: the rows of versions that are not
-- work rows any more, and the links of those that are. {schema} is one of those four names.
CREATE SCHEMA IF NOT EXISTS {schema}
