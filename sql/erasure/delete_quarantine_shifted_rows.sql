-- Quarantined rows of a source whose fields could not be trusted as read (reason
-- wrong_field_count: fewer fields than the header, so a value may sit under another column's
-- name, an email under customer_id): deleted when any of their raw values holds one of the
-- person's keys of kind $kind. Returns the export file of each.
DELETE FROM staging.quarantine
WHERE source = $source
  AND reason = 'wrong_field_count'
  AND list_has_any(
      $values::VARCHAR[],
      list_transform(
          map_values(CAST(raw_values AS MAP(VARCHAR, VARCHAR))),
          v -> erasure_normalized(v, $kind)
      )
  )
RETURNING source_file
