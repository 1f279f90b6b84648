"""Engagement Box: customer-value tables from a retailer's raw exports (no Dagster import)."""

import gc
import warnings

# pandera imports pyspark's pandas API when pyspark is installed (the `spark` and dev extras),
# which warns that it is not tested with pandas 3. The Spark engine hands pyspark Arrow only, so
# the warning says nothing about this project; without this line every command printed it.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

# Set when the package is first imported (every entry point imports it first: the
# `engagement-box` command, and the code location through `pipelines/__init__.py`), before the
# heavy imports (Dagster, pandas, scipy: most of the 220k objects a process holds after them).
# CPython's cyclic collector runs a young-generation pass every 700 new containers, and with
# them full passes over that heap; reference counting frees whatever is not in a cycle either
# way, so a higher first threshold only lets cycles wait longer. Measured with `gc.callbacks` on
# a 1 % day at 1M customers: the collector's CPU in the imports 0.40 -> 0.10 s, in the run after
# them 0.63 -> 0.18 s (three full passes, 0.52 s, -> none); in `engagement-box run` with nothing
# new, set here rather than when `pipelines` is imported (after Dagster): 0.30-0.34 -> 0.14-0.19.
gc.set_threshold(100_000, 10, 10)
