-- The warehouse's own salt for subject hashes, created once when no salt is given (argument or
-- ENGAGEMENT_ERASURE_SALT). Anyone holding the warehouse file holds the salt too: see the module
-- docstring of pipelines/erasure.py for the trade-off.
CREATE TABLE IF NOT EXISTS staging.erasure_salt (
    salt       VARCHAR   NOT NULL,
    created_at TIMESTAMP NOT NULL
)
