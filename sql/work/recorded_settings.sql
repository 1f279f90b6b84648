-- The settings an as-of's work rows were computed with, as work/version_inputs recorded them.
SELECT settings FROM work.version_inputs WHERE as_of = $as_of
