-- The keys staged by earlier ingests, for a source whose key is several columns (fx_rates: date
-- and currency), as one text: the columns joined by chr(31), as `ingestion.key_text` joins them.
-- {table} and {key} come from the contracts' allow-list.
SELECT concat_ws(chr(31), {key}) FROM staging.{table}
