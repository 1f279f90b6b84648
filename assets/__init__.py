"""The Dagster assets, one module per domain (docs/ARCHITECTURE.md)."""

import warnings

# The checks of the month-partitioned assets name their partitions (AssetCheckSpec's
# partitions_def, a preview API in the pinned Dagster 1.13): without it Dagster records each
# check of a partitioned run twice, a PLANNED row for the month that never completes and the
# result without a month. The API is used as the pin documents it; the warning says nothing
# to a user of this project.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=Warning
)
