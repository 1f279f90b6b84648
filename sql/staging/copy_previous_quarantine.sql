-- The published file being built (attached as {database}) takes the masked quarantine of the
-- file analysts have now (attached as {previous}) whole: it was masked from the same rows.
CREATE TABLE {database}.staging.quarantine AS SELECT * FROM {previous}.staging.quarantine
