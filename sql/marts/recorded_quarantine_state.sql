-- What the published file's quarantine was built from and what the file holds, as recorded at
-- its build (sql/marts/create_published_quarantine_state.sql).
SELECT state, file_state FROM marts.published_quarantine_state
