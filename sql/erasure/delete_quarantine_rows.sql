-- Quarantined rows of a source whose raw text ($path, e.g. '$.email', an identifying column of
-- that source) holds one of the person's keys of kind $kind. Returns the export file of each.
DELETE FROM staging.quarantine
WHERE source = $source
  AND list_contains(
      $values::VARCHAR[], erasure_normalized(json_extract_string(raw_values, $path), $kind)
  )
RETURNING source_file
