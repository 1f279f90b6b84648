-- The links to work.<mart>'s rows of $as_of, once the versions have their own copy
-- (marts/keep_published_rows.sql).
DELETE FROM history_rows.from_work WHERE mart = $mart AND as_of = $as_of
