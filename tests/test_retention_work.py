"""Retention trims the work tables: versions link their work rows instead of copying them, so
without a trim every as-of a step ever wrote would stay in `work.*` for ever. An as-of leaves
every work table (with its record in `written_partitions` and `incremental_state`) once no
retained version links it and it is no table's newest; what retained versions show is the same
before and after."""

from datetime import date

import dagster as dg
import duckdb
import polars as pl

from assets.versions_maintenance import version_retention
from engagement_box import incremental, partitioned
from engagement_box.governance import versions
from pipelines.resources import RetentionPolicy, Warehouse

D1, D2, D3, D4 = date(2025, 9, 30), date(2025, 10, 31), date(2025, 11, 30), date(2025, 12, 31)
# What the incremental steps compare: the same staged files every time.
NOW = {
    "files": {"orders/a.csv": ["orders", "sha-a"]},
    "order_rows": {"orders/a.csv": 3},
    "erasures": [],
    "settings": {},
    "code": "c",
}


def write_as_of(con, as_of: date, n: int, tables=("customer_rfm", "customer_summary")) -> None:
    """A run's work rows of `as_of`: the mart `customer_rfm` and the non-mart
    `customer_summary` (with its incremental state), `n` customers each."""
    ids = [f"c{i}" for i in range(n)]
    if "customer_rfm" in tables:
        frame = pl.DataFrame({"customer_id": ids, "segment": [f"S{as_of.month}"] * n})
        partitioned.write_partition(con, "work", "customer_rfm", frame, as_of)
    if "customer_summary" in tables:
        frame = pl.DataFrame({"customer_id": ids, "frequency": [as_of.month] * n})
        state = incremental.record(con, "customer_summary", as_of, NOW, n)
        partitioned.write_partition(con, "work", "customer_summary", frame, as_of, also=state)


def publish(con, as_of: date) -> int:
    snapshot = versions.publish(
        con, ["customer_rfm"], run_id="r", partition_key=None, as_of=str(as_of),
        settings={"as_of": str(as_of)}, work_as_of=as_of,
    )  # fmt: skip
    assert snapshot.published
    return snapshot.snapshot_id


def as_ofs(con, table: str) -> list[date]:
    statement = f"SELECT DISTINCT as_of FROM work.{table} WHERE as_of IS NOT NULL ORDER BY 1"
    return [r[0] for r in con.execute(statement).fetchall()]


def registered(con, table: str) -> list[date]:
    return [
        r[0]
        for r in con.execute(
            "SELECT as_of FROM work.written_partitions WHERE table_name = $t ORDER BY 1",
            {"t": table},
        ).fetchall()
    ]


def version_rows(con, snapshot_id: int) -> tuple[list[tuple], list[tuple]]:
    """A version's rows as analysts read them: time travel and `history`."""
    at = con.execute(
        "SELECT * FROM marts.customer_rfm_at($id) ORDER BY ALL", {"id": snapshot_id}
    ).fetchall()
    history = con.execute(
        "SELECT * FROM history.customer_rfm WHERE snapshot_id = $id ORDER BY ALL",
        {"id": snapshot_id},
    ).fetchall()
    return at, history


def test_an_expired_versions_as_of_leaves_every_work_table_and_retained_versions_stay(warehouse):
    for n, as_of in enumerate((D1, D2, D3), start=2):
        write_as_of(warehouse, as_of, n)
    v1, v2, v3 = (publish(warehouse, as_of) for as_of in (D1, D2, D3))
    before = {v: version_rows(warehouse, v) for v in (v2, v3)}
    current = warehouse.execute("SELECT * FROM marts.customer_rfm ORDER BY ALL").fetchall()

    result = versions.apply_retention(warehouse, keep_versions=2, keep_days=10_000)

    assert result.expired == [v1]
    assert result.as_ofs_trimmed == [D1]
    assert result.work_rows_deleted == 2 + 2  # D1's rows of both work tables
    assert result.rows_deleted == 2  # the expired version's rows, counted as before
    for table in ("customer_rfm", "customer_summary"):
        assert as_ofs(warehouse, table) == [D2, D3], table
        assert registered(warehouse, table) == [D2, D3], table
        assert partitioned.written(warehouse, "work", table, D1) is None
    assert as_ofs(warehouse, "incremental_state") == [D2, D3]
    assert {v: version_rows(warehouse, v) for v in (v2, v3)} == before
    assert before[v2][0] == [(f"c{i}", "S10", D2) for i in range(3)]
    assert warehouse.execute("SELECT * FROM marts.customer_rfm ORDER BY ALL").fetchall() == current
    # The incremental planner never carries from the trimmed as-of: at D1 there is none now.
    plan = incremental.plan(warehouse, "customer_summary", D1, NOW)
    assert not plan.incremental
    assert "no earlier state of customer_summary up to 2025-09-30" in plan.reason
    plan = incremental.plan(warehouse, "customer_summary", D2, NOW)
    assert plan.incremental and plan.previous_as_of == D2
    # Nothing more to trim: a second retention deletes nothing.
    again = versions.apply_retention(warehouse, keep_versions=2, keep_days=10_000)
    assert (again.expired, again.as_ofs_trimmed, again.work_rows_deleted) == ([], [], 0)


def test_each_tables_newest_as_of_and_every_linked_one_are_kept(warehouse):
    """D2 is linked by the current version, not the newest: kept. D4 (a run that failed before
    its publish) is linked by no version but is the newest: kept. D3 (an earlier run that never
    published) and D1 (an expired version's) go, D3 although no version expired for it."""
    for as_of in (D1, D2):
        write_as_of(warehouse, as_of, 2)
    v1, v2 = publish(warehouse, D1), publish(warehouse, D2)
    write_as_of(warehouse, D3, 3)
    write_as_of(warehouse, D4, 4)

    result = versions.apply_retention(warehouse, keep_versions=1, keep_days=10_000)

    assert result.expired == [v1]
    assert result.as_ofs_trimmed == [D1, D3]
    assert result.work_rows_deleted == 2 * 2 + 2 * 3
    for table in ("customer_rfm", "customer_summary"):
        assert as_ofs(warehouse, table) == [D2, D4], table
        assert registered(warehouse, table) == [D2, D4], table
    assert as_ofs(warehouse, "incremental_state") == [D2, D4]
    assert versions.current_version(warehouse) == v2
    assert version_rows(warehouse, v2)[0] == [("c0", "S10", D2), ("c1", "S10", D2)]
    # The next run carries from the newest as-of, which stayed whole.
    plan = incremental.plan(warehouse, "customer_summary", date(2026, 1, 31), NOW)
    assert plan.incremental and plan.previous_as_of == D4


def test_an_as_of_is_trimmed_from_every_work_table_or_from_none(warehouse):
    """A run that wrote `customer_summary` as of D4 and stopped before `customer_rfm`: D3 is
    still `customer_rfm`'s newest, so it stays in every work table (a step reading another
    table's rows of the as-of it carries from finds them whole)."""
    write_as_of(warehouse, D1, 2)
    v1 = publish(warehouse, D1)
    write_as_of(warehouse, D2, 2)
    v2 = publish(warehouse, D2)
    write_as_of(warehouse, D3, 3)
    write_as_of(warehouse, D4, 4, tables=("customer_summary",))

    result = versions.apply_retention(warehouse, keep_versions=1, keep_days=10_000)

    assert result.expired == [v1] and versions.current_version(warehouse) == v2
    assert result.as_ofs_trimmed == [D1]
    assert as_ofs(warehouse, "customer_rfm") == [D2, D3]
    assert as_ofs(warehouse, "customer_summary") == [D2, D3, D4]


def test_the_retention_asset_says_what_it_trimmed(tmp_path):
    working = tmp_path / "working.duckdb"
    con = duckdb.connect(str(working))
    try:
        for as_of in (D1, D2, D3):
            write_as_of(con, as_of, 2)
            publish(con, as_of)
    finally:
        con.close()
    result = dg.materialize(
        [version_retention],
        resources={
            "warehouse": Warehouse(
                database=str(tmp_path / "published.duckdb"), working_database=str(working)
            ),
            "retention": RetentionPolicy(keep_versions=1, keep_days=10_000),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["expired_now"] == [1, 2]
    assert metadata["work_as_ofs_trimmed"] == ["2025-09-30", "2025-10-31"]
    assert metadata["work_rows_deleted"] == 8
