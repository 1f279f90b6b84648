-- Keys no profile owns: carried by more profiles than the limit (NULL customer on a customers'
-- key), per key type, and the most profiles one of them is carried by. No key's value: this goes
-- into Dagster's event log. Run by both engines (the Spark engine transpiles it).
SELECT role AS key_type, count(*) AS keys, max(source_rows) AS most_profiles
FROM intermediate.identity_links
WHERE source = 'customers' AND role IN ('email', 'handle')
  AND normalized_value IS NOT NULL AND customer_id IS NULL
GROUP BY role
ORDER BY role
