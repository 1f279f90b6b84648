"""The Spark session's configuration, in one place (used by `pipelines/resources.py`'s
`PySparkResource` and by the tests). No Dagster import here."""

import os
import sys

# A short-lived batch on a small machine: the client JIT and the serial collector start the JVM
# in 10-15 s instead of 29-44 s here. On a cluster, spark-defaults.conf or spark-submit may set
# more; these are only defaults.
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def spark_conf(master: str, shuffle_partitions: int = 4) -> dict[str, str]:
    """The settings every Engagement Box session starts with. In local mode the Python workers
    are this interpreter (the one with the project installed); on a cluster, PYSPARK_PYTHON."""
    local = {"spark.pyspark.python": sys.executable} if master.startswith("local") else {}
    return {
        **local,
        "spark.master": master,
        "spark.app.name": "engagement-box",
        "spark.driver.extraJavaOptions": FAST_JVM,
        "spark.executor.extraJavaOptions": FAST_JVM,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        # Timestamps are naive UTC everywhere, as in the DuckDB engine.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.timestampType": "TIMESTAMP_NTZ",
        "spark.sql.ansi.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Lake files are written whole by each task, then renamed into place by this code.
        "spark.sql.sources.commitProtocolClass": (
            "org.apache.spark.sql.execution.datasources.SQLHadoopMapReduceCommitProtocol"
        ),
    }


def use_this_python(master: str) -> None:
    """In local mode Spark's Python workers must be this interpreter (the one with the project
    installed); Spark reads that from PYSPARK_PYTHON when it starts a worker."""
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def local_session(master: str = "local[2]", shuffle_partitions: int = 2):
    """A plain SparkSession with `spark_conf` (tests and scripts; runs use PySparkResource)."""
    from pyspark.sql import SparkSession

    use_this_python(master)

    builder = SparkSession.builder
    for key, value in spark_conf(master, shuffle_partitions).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
