-- A column of the registry a warehouse written before it lacks (computation or failed_checks).
-- {registry} is written_partitions (versions.REGISTRY).
ALTER TABLE {schema}.{registry} ADD COLUMN {column} VARCHAR
