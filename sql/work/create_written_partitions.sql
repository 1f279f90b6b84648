-- Which as-of each partitioned table of {schema} holds (partitioned.py's docstring).
-- {registry} is written_partitions (versions.REGISTRY).
CREATE TABLE {schema}.{registry} (
    table_name VARCHAR,
    as_of DATE,
    written_at TIMESTAMP,
    computation VARCHAR,
    failed_checks VARCHAR,
    PRIMARY KEY (table_name, as_of)
)
