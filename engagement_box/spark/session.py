"""The Spark session's configuration, in one place (used by `pipelines/resources.py`'s
`PySparkResource` and by the tests). No Dagster import here."""

import os
import sys

# The JVM profiles (ENGAGEMENT_SPARK_JVM). `fast`: a short-lived batch on a small machine (the
# sample, the tests): the client JIT and the serial collector start the JVM in 10-15 s instead
# of 29-44 s here. `large`: millions of rows, a heap of gigabytes: the full JIT (the client JIT's
# code is slower per row) and the parallel collector (the serial one spent 135 of 507 CPU-s in
# a 1M run, docs/SPARK.md). On a cluster, spark-defaults.conf or spark-submit may set more;
# these are only defaults. The client JIT alone reserves a 48 MB code cache, which Spark's
# generated classes fill: its sweeper then threw out compiled methods (38,668 in one sample
# run) that ran interpreted and were compiled again. `fast` reserves what the full JIT reserves
# by default (240 MB): the sample run's JVM took 47-51 CPU-s instead of 58-60, and no run
# stopped (3 of 7 did with 48 MB, "Out of space in CodeCache"; docs/SPARK.md).
JVM_PROFILES = {
    "fast": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m",
    "large": "-XX:+UseParallelGC",
}


def spark_conf(master: str, shuffle_partitions: int = 4, jvm: str | None = None) -> dict[str, str]:
    """The settings every Engagement Box session starts with. In local mode the Python workers
    are this interpreter (the one with the project installed); on a cluster, PYSPARK_PYTHON.
    `jvm` is a profile of JVM_PROFILES (default: the setting ENGAGEMENT_SPARK_JVM)."""
    from engagement_box import settings

    options = JVM_PROFILES[jvm or settings.value("ENGAGEMENT_SPARK_JVM")]
    local = {"spark.pyspark.python": sys.executable} if master.startswith("local") else {}
    return {
        **local,
        "spark.master": master,
        "spark.app.name": "engagement-box",
        "spark.driver.extraJavaOptions": options,
        "spark.executor.extraJavaOptions": options,
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


# Spark's warnings that every run meets by design, quieted to errors: a review counted 218 of a
# sample run's 302 console lines from the first, 31 from the second, and no line of the run's
# own among them. Windows with no partition (ranks over all rows: the profiles' order in
# `customer_merge_edges.sql`, the RFM scores; docs/SPARK.md says what they cost at scale), and
# `CREATE NAMESPACE IF NOT EXISTS` of a namespace that exists.
QUIETED_LOGGERS = (
    "org.apache.spark.sql.execution.window.WindowExec",
    "org.apache.spark.sql.execution.datasources.v2.CreateNamespaceExec",
)


def quiet_known_warnings(session) -> None:
    """Set `QUIETED_LOGGERS` to ERROR in the session's JVM (log4j 2, as Spark 4 ships it)."""
    jvm = session.sparkContext._jvm
    error = jvm.org.apache.logging.log4j.Level.ERROR
    for name in QUIETED_LOGGERS:
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, error)


def use_this_python(master: str) -> None:
    """In local mode Spark's Python workers must be this interpreter (the one with the project
    installed); Spark reads that from PYSPARK_PYTHON when it starts a worker."""
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def local_session(
    master: str = "local[2]",
    shuffle_partitions: int = 2,
    extra: dict[str, str] | None = None,
    jvm: str | None = None,
):
    """A plain SparkSession with `spark_conf` and `extra` settings (tests and scripts; runs use
    PySparkResource)."""
    from pyspark.sql import SparkSession

    use_this_python(master)

    builder = SparkSession.builder
    for key, value in {**spark_conf(master, shuffle_partitions, jvm), **(extra or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    quiet_known_warnings(session)
    return session
