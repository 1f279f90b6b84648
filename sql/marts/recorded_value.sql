-- A one-value record of the working database's (`readers._recorded`): {table} and {column} are
-- one of the code's records (published_state.state, published_file.identity,
-- warehouse_identity.warehouse_id, adopted_file.identity).
SELECT {column} FROM marts.{table}
