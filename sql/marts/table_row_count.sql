-- The rows of any table an asset wrote: {schema}.{table} from the asset's own names, in
-- whichever schema it writes (staging, intermediate, work, marts).
SELECT count(*) FROM {schema}.{table}
