-- Rows held back for a repeated key (repeated_rows, a batch registered by the appending
-- thread) into duplicate_rows. {columns}: the staged table's columns.
INSERT INTO duplicate_rows SELECT detail, {columns} FROM repeated_rows
