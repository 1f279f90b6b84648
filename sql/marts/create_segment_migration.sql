-- Migration of every published version against the version before it (see segment_migration.sql).
CREATE TABLE IF NOT EXISTS marts.segment_migration (
    from_snapshot BIGINT,
    to_snapshot   BIGINT,
    dimension     VARCHAR,
    from_value    VARCHAR,
    to_value      VARCHAR,
    moved         BOOLEAN,
    customers     BIGINT,
    cev_from      DOUBLE,
    cev_to        DOUBLE
)
