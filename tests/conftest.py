import csv
import os
import warnings
from pathlib import Path

import duckdb
import pytest
from hypothesis import settings as hypothesis_settings

# Two test workers share two cores: each DuckDB connection of a step gets one thread (the
# setting users have for shared machines). On the tests' small tables DuckDB has nothing to run
# in parallel, and its idle second thread cost a fifth of a run's CPU. Subprocesses inherit it.
os.environ.setdefault("ENGAGEMENT_DUCKDB_THREADS", "1")

# No property test checks timing: Hypothesis's 200 ms deadline failed tests on the shared,
# loaded machine (a 0.8 ms example took 271 ms once), so the suite runs without it.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")

# lifetimes imports pandas APIs that warn on pandas 3; the warning says nothing about our code.
warnings.filterwarnings("ignore", message=".*Pandas4Warning.*")

ORDER_HEADER = [
    "order_id",
    "customer_id",
    "email",
    "ordered_at",
    "net_amount",
    "currency",
    "status",
    "channel",
]


def good_order(i: int, customer: str = "c1") -> dict[str, str]:
    return {
        "order_id": f"o{i}",
        "customer_id": customer,
        "email": f"{customer}@example.com",
        "ordered_at": f"2024-01-{1 + i % 28:02d}T10:00:00",
        "net_amount": f"{10 + i}.50",
        "currency": "USD",
        "status": "completed",
        "channel": "web",
    }


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = header or (list(rows[0]) if rows else ORDER_HEADER)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def warehouse(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "test.duckdb"))
    yield con
    con.close()


@pytest.fixture
def exports_dir(tmp_path: Path) -> Path:
    path = tmp_path / "exports"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def december_run(tmp_path_factory, worker_id):
    """The tiny retailer run for December once per test session, shared by the test workers
    (`tests/pipeline_runs.py`: each worker's own copy cost it a whole run, 12-13 CPU-s).
    Read it, never write it; to go on from it, take `copy_run(december_run, tmp_path)`."""
    from tests.pipeline_runs import shared_december

    if worker_id == "master":  # no workers: this session's own folder
        root = tmp_path_factory.mktemp("december_run")
    else:  # the session's folder, above each worker's own
        root = tmp_path_factory.getbasetemp().parent / "december_run"
    run = shared_december(root)
    assert run.result.success, [e.message for e in run.result.all_events if e.is_failure]
    return run


# Spark's own jars first on the driver's class path (they stay where they are too: the same
# classes, found earlier). Spark's closure cleaner reads the class file of every closure of
# every job (about 30 % of the JVM's samples in a test's runs), and the JVM looks a class file
# up in the class path's 280 jars in turn, alphabetically, where spark-* come late. Alternated
# runs of a 60-customer retailer, the third of a session (2026-12-07, docs/BENCHMARKS.md):
# 38.6 against 48.9 s and 29.9 against 35.8 s. It changes where classes are found, not which.
SPARK_JARS_FIRST = (
    "spark-core_*", "spark-sql_*", "spark-catalyst_*", "spark-sql-api_*",
    "spark-common-utils_*", "scala-library-*",
)  # fmt: skip


def _spark_jars_first() -> dict[str, str]:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    found = [str(p) for pattern in SPARK_JARS_FIRST for p in sorted(jars.glob(f"{pattern}.jar"))]
    return {"spark.driver.extraClassPath": os.pathsep.join(found)} if found else {}


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the tests marked `spark`: they all run on one test worker
    (`SparkOnOneWorker` below), so one JVM starts. Skipped only where Java is absent."""
    import shutil

    if shutil.which("java") is None:
        pytest.skip("the Spark engine's tests need Java 17 (`java` is not on PATH)")
    from engagement_box.spark.session import local_session

    # Adaptive query execution off: on the tests' tables of tens of rows its re-planning of
    # each query cost 10-18 % of a Spark test's time (a staging test 35.7 against 41.3-41.5 s,
    # the parity runs 54.4 against 59.3-67.0 s, 2026-12-06). It changes plans, not results;
    # runs keep it (on large tables it merges small partitions and splits skewed joins).
    # Generated code off, whole-stage and per expression (Spark's own tests switch it the same
    # way): on tables of tens of rows compiling each query's Java cost more than running it
    # interpreted. Two Spark test files took 132-156 s and 167-199 CPU-s without it against
    # 167-193 s and 212-245 CPU-s with it, alternated (2026-12-06; whole-stage alone: no gain).
    # It changes how a plan is executed, not its results; runs keep generated code.
    session = local_session(
        "local[2]",
        shuffle_partitions=2,
        extra={
            "spark.sql.adaptive.enabled": "false",
            "spark.sql.codegen.wholeStage": "false",
            "spark.sql.codegen.factoryMode": "NO_CODEGEN",
            **_spark_jars_first(),
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_run(spark, tmp_path_factory):
    """The bundled sample on both engines, once per session (`tests/spark_runs.py`), for the
    parity tests: (DuckDB connection, SparkTables, staging reports, lake, the Spark run)."""
    from tests.spark_runs import both_engines

    run = both_engines(spark, tmp_path_factory.mktemp("parity"))
    yield run
    run[0].close()


@pytest.fixture
def session(spark, spark_run):
    """The shared Spark session, its tables put back as the parity run left them afterwards:
    for a test whose Spark steps register tables of their own under the same names (the parity
    tests read the session's tables)."""
    from assets.spark import lake_tables

    yield spark
    lake_tables(spark, spark_run[3])


# The longest tests, longest first (`--durations` on a quiet 2-core machine, docs/BENCHMARKS.md
# "The test suite"). The order only decides how the two workers share the suite: tests are handed
# out one at a time (`--maxschedchunk=1` in pyproject.toml), so the longest start first and the
# workers end together on quick tests instead of one ending alone on a two-minute run.
LONGEST_FIRST = (
    "test_safe_operations.py::test_killed_and_stopped_runs",
    "test_cli.py::test_a_cli_run_tells_its_steps",
    "test_partitions.py::test_partitions_hold_their_own_month",
    "test_incremental.py::test_a_day_of_new_orders",
    "test_pipeline_e2e.py::test_backfilled_month",
    "test_readers_run.py::test_a_reader_holds",
    "test_pipeline_e2e.py::test_a_pinned_purchase_model",
    "test_faults.py::test_runs_starting_together",
    "test_readme.py::test_dagster_dev_loads",
    "test_pipeline_e2e.py::test_rerun_with_unchanged_inputs",
    "test_pipeline_e2e.py::test_cdnow_through_the_assets",
)
SPARK_TESTS = "tests/test_spark_"  # the modules whose tests share the Spark session


def _rank(item) -> tuple[int, int]:
    if item.nodeid.startswith(SPARK_TESTS):
        return (-1, 0)  # first, on the worker that takes them all
    for rank, name in enumerate(LONGEST_FIRST):
        if name in item.nodeid:
            return (0, rank)
    # then the other whole-graph runs (marked integration), then the quick tests
    return (1 if item.get_closest_marker("integration") else 2, 0)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: a worker per core, and one more where Java is there. The Spark tests' worker
    waits on the JVM much of the time (before the engagement step: 29 CPU-s of JVM and 27 of
    Python in about 100 s), so a third worker uses the idle share of the cores meanwhile."""
    import shutil

    cores = len(os.sched_getaffinity(0))
    return cores + 1 if shutil.which("java") else cores


def pytest_xdist_make_scheduler(config, log):
    """xdist's load scheduling, except that every Spark test goes to the first worker at the
    start: a second worker would start a second JVM and build the parity run again (2-3 minutes
    of CPU). (`--dist loadgroup` did not group them with pytest-xdist 3.8 here.)"""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScheduling

    class SparkOnOneWorker(LoadScheduling):
        def schedule(self) -> None:
            if self.collection is None and self._check_nodes_have_same_collection():
                collection = next(iter(self.node2collection.values()))
                spark = [i for i, nodeid in enumerate(collection) if nodeid.startswith(SPARK_TESTS)]
                if spark and len(self.nodes) > 1:
                    self.collection = collection
                    if self.maxschedchunk is None:
                        self.maxschedchunk = len(collection)
                    self.pending[:] = [i for i in range(len(collection)) if i not in set(spark)]
                    first, *others = self.nodes
                    self.node2pending[first].extend(spark)
                    first.send_runtest_some(spark)
                    for node in others:
                        self._send_tests(node, 2)
                    if not self.pending:
                        for node in self.nodes:
                            node.shutdown()
                    return
            super().schedule()

    return SparkOnOneWorker(config, log)
