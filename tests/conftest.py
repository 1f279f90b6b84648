import csv
import warnings
from pathlib import Path

import duckdb
import pytest

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
def december_run(tmp_path_factory):
    """The tiny retailer run for December once per test worker (`tests/pipeline_runs.py`).
    Read it; to go on from it, take `copy_run(december_run, tmp_path)`."""
    from tests.pipeline_runs import december

    run = december(tmp_path_factory.mktemp("december_run"))
    assert run.result.success, [e.message for e in run.result.all_events if e.is_failure]
    return run


@pytest.fixture(scope="session")
def spark():
    """One local Spark session per test worker for the tests marked `spark` (the parity module
    builds both engines once per worker). Skipped only where Java is absent."""
    import shutil

    if shutil.which("java") is None:
        pytest.skip("the Spark engine's tests need Java 17 (`java` is not on PATH)")
    from engagement_box.spark.session import local_session

    session = local_session("local[2]", shuffle_partitions=2)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def pytest_collection_modifyitems(config, items):
    """The whole-graph runs (marked integration) start first: the test workers then finish
    together on the quick tests instead of one worker ending alone on a minute-long run. The
    Spark tests start first too (a session takes 15-25 s to start, the parity run minutes)."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("spark") is None,
            item.get_closest_marker("integration") is None,
        )
    )
