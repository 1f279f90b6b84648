-- The quarantine as a published file holds it (`readers._file_quarantine_state`): every column
-- of every row, masked values included. Filled by the caller (a template): {quarantine} is
-- staging.quarantine, or <database>.staging.quarantine of an attached file.
SELECT count(*), sum(CAST(hash(q) AS HUGEINT)) FROM {quarantine} AS q
