-- work: checked results of the latest run; marts: the latest published version;
-- history: every retained version. {schema} is one of those three names.
CREATE SCHEMA IF NOT EXISTS {schema}
