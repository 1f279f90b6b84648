-- A record from before the file's own state (no file_state column): created again.
DROP TABLE marts.published_quarantine_state
