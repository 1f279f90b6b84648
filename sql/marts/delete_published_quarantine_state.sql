-- Forget what the published quarantine was masked from: the next publish masks every row again.
DELETE FROM marts.published_quarantine_state
