-- The erased carriers of each placeholder key (staging.erased_placeholder_carriers), summed over
-- the erasure requests: what the register gives the Spark engine's identity.
SELECT kind, key_hash, sum(carriers) AS carriers
FROM staging.erased_placeholder_carriers
GROUP BY kind, key_hash
ORDER BY kind, key_hash
