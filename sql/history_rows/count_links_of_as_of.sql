-- The versions linked to work.<mart>'s rows of $as_of (a rerun of the as-of replaces them).
SELECT count(*) FROM history_rows.from_work WHERE mart = $mart AND as_of = $as_of
