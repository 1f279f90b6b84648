-- What the published file's quarantine was masked from (`readers.quarantine_state` of the
-- working quarantine) and what the file holds (`readers._file_quarantine_state`): one row at
-- most, none when the file has no quarantine.
CREATE TABLE IF NOT EXISTS marts.published_quarantine_state (state VARCHAR, file_state VARCHAR)
