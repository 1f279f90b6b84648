-- A schema of the published file being built (attached as {database}).
CREATE SCHEMA {database}.{schema}
