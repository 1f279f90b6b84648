-- What an as-of's work rows were computed from, as work/version_inputs recorded it.
SELECT inputs_fingerprint FROM work.version_inputs WHERE as_of = $as_of
