-- Quarantined rows of a source holding one of the person's keys where its contract does not put
-- it (values swapped or misplaced, so the row failed its contract): an email in any field
-- ($emails, looked for in every value with an '@', whole or as one of its words), a customer
-- id in any of the source's identifying fields ($fields: an id under `email`), a handle among a
-- profile's listed handles ($lists, entries split at ';'). Returns the export file of each.
DELETE FROM staging.quarantine
WHERE source = $source
  AND (
      -- each value with an '@': whole, and each of its words with an '@' (an address inside a
      -- longer value, `Jane Doe <jane@x.com>`: $email_word, stripped of $email_wrap, as
      -- erasure.EMAIL_WORD, EMAIL_WORD_WRAP)
      list_has_any(
          $emails::VARCHAR[],
          flatten(
              list_transform(
                  list_filter(
                      list_transform(
                          map_values(CAST(raw_values AS MAP(VARCHAR, VARCHAR))),
                          v -> erasure_half_width(v)  -- a full-width @ is an @ (the ingest's)
                      ),
                      v -> contains(v, '@')
                  ),
                  v -> list_concat(
                      [erasure_normalized(v, 'email')],
                      list_transform(
                          regexp_extract_all(v, $email_word),
                          w -> erasure_normalized(trim(w, $email_wrap), 'email')
                      )
                  )
              )
          )
      )
      OR list_has_any(
          $ids::VARCHAR[],
          list_transform(
              $fields::VARCHAR[],
              f -> erasure_normalized(json_extract_string(raw_values, '$.' || f), 'customer_id')
          )
      )
      OR list_has_any(
          $handles::VARCHAR[],
          list_transform(
              flatten(
                  list_transform(
                      $lists::VARCHAR[],
                      f -> string_split(
                          erasure_half_width(
                              coalesce(json_extract_string(raw_values, '$.' || f), '')
                          ),
                          ';'
                      )
                  )
              ),
              v -> erasure_normalized(v, 'handle')
          )
      )
  )
RETURNING source_file
