-- A changed file replaces what it staged before. {table} comes from the contracts' allow-list.
DELETE FROM staging.{table} WHERE list_contains($files, source_file)
