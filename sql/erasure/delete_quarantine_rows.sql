-- Quarantined rows of a source whose raw text ($path, e.g. '$.email', an identifying column of
-- that source) holds one of the person's keys of kind $kind. Returns the export file of each.
DELETE FROM staging.quarantine
WHERE source = $source
  AND erasure_holds(json_extract_string(raw_values, $path), $values::VARCHAR[], $kind)
RETURNING source_file
