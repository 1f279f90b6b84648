-- Parameters: $state (the working quarantine's state), $built (the file's own).
INSERT INTO marts.published_quarantine_state VALUES ($state, $built)
