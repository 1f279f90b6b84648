"""Engagement Box: customer-value tables from a retailer's raw exports (no Dagster import)."""

import warnings

# pandera imports pyspark's pandas API when pyspark is installed (the `spark` and dev extras),
# which warns that it is not tested with pandas 3. The Spark engine hands pyspark Arrow only, so
# the warning says nothing about this project; without this line every command printed it.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)
