"""The Spark staging validates only the export files it has not validated before: a day's new
file is read and checked alone, the other files' validated rows are taken from the lake
(`staging.ValidatedFiles`), and the staged tables equal those of a staging that read every
file."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from engagement_box import generator
from engagement_box.spark import pipeline
from engagement_box.spark.staging import VALIDATED_DIR
from engagement_box.spark.tables import SparkTables
from engagement_box.staging.contracts import SOURCES, IngestError
from tests.conftest import ORDER_HEADER, good_order, write_csv

pytestmark = pytest.mark.spark

AT = dt.datetime(2026, 1, 2)  # the run's time: after the generated data, whatever the clock says


def tables_of(tables: SparkTables) -> dict[str, pl.DataFrame]:
    """Every staged table and the quarantine (without the run's id and time), rows sorted."""
    out = {}
    for name in [*SOURCES, "quarantine"]:
        frame = pl.from_arrow(tables.spark.table(f"staging.{name}").toArrow())
        frame = frame.drop("run_id", "quarantined_at", strict=False)
        out[name] = frame.sort(pl.all(), nulls_last=True)
    return out


def counts(reports) -> dict[str, tuple]:
    return {
        n: (r.rows_read, r.rows_staged, r.rows_quarantined, r.rows_erased, r.rows_future)
        for n, r in reports.items()
    }


def validated(reports) -> dict[str, int]:
    return {n: r.files_validated for n, r in reports.items()}


def test_a_staging_validates_only_the_files_it_has_not_validated(session, tmp_path: Path):
    exports = tmp_path / "exports"
    generator.generate(
        exports, generator.GeneratorConfig(customers=60, seed=11, end=dt.date(2025, 12, 31))
    )
    lake = tmp_path / "lake"
    tables = SparkTables(session, lake)
    first = pipeline.stage_all(tables, exports, "run-1", AT, code="c1")
    assert validated(first) == {n: r.files for n, r in first.items()}

    # A day later: a new orders file (a new order, one repeating a staged key with another
    # amount, one with a malformed amount, one dated a week after the run), a changed profile
    # file, a reviews file gone.
    staged_order = pl.from_arrow(
        session.table("staging.orders").where("customer_id IS NOT NULL").limit(1).toArrow()
    ).row(0, named=True)
    header = ",".join(ORDER_HEADER)
    (exports / "orders" / "orders_new.csv").write_text(
        f"{header}\n"
        "new-1,{c},,2025-12-31 10:00:00,10.00,USD,completed,web\n"
        "{o},{c},,2025-12-30 10:00:00,99.00,USD,completed,web\n"
        "new-2,{c},,2025-12-31 11:00:00,ten,USD,completed,web\n"
        "new-3,{c},,2026-01-09 11:00:00,12.00,USD,completed,web\n".format(
            c=staged_order["customer_id"], o=staged_order["order_id"]
        )
    )
    profiles = sorted((exports / "customers").glob("*"))[0]
    profiles.write_text(profiles.read_text() + "\n")  # another content, the same rows
    gone = sorted((exports / "reviews").glob("*"))[-1]
    gone.unlink()
    later = AT + dt.timedelta(days=1)
    second = pipeline.stage_all(tables, exports, "run-2", later, code="c1")
    assert validated(second) == {
        **{n: 0 for n in SOURCES},
        "orders": 1,
        "customers": 1,
    }, validated(second)
    assert second["orders"].rows_future == 1  # the order dated after the run's time
    kept = {p.name for p in (lake / "tables" / VALIDATED_DIR / "reviews").iterdir()}
    assert len(kept) == first["reviews"].files - 1  # the gone file's rows are deleted

    # The same tables and counts as a staging that read every file.
    fresh = SparkTables(session, tmp_path / "fresh")
    every = pipeline.stage_all(fresh, exports, "run-2", later, code="c1")
    assert validated(every) == {n: r.files for n, r in every.items()}
    assert counts(second) == counts(every)
    assert second["orders"].quarantine_by_reason == every["orders"].quarantine_by_reason
    incremental, whole = tables_of(tables), tables_of(fresh)
    for name in whole:
        assert incremental[name].equals(whole[name]), name
    assert "new-1" in set(whole["orders"]["order_id"])

    # Past the future-dated order's day, its file is validated again and the order staged;
    # the files validated with no such row are not.
    third = pipeline.stage_all(tables, exports, "run-3", dt.datetime(2026, 1, 20), code="c1")
    assert validated(third) == {**{n: 0 for n in SOURCES}, "orders": 1}
    assert "new-3" in set(pl.from_arrow(session.table("staging.orders").toArrow())["order_id"])
    # An earlier clock, other code or a forced run validate every file again.
    earlier = AT - dt.timedelta(days=1)
    assert validated(pipeline.stage_all(tables, exports, "r", earlier, code="c1"))["reviews"] > 0
    assert validated(pipeline.stage_all(tables, exports, "r", later, code="c2"))["reviews"] > 0
    forced = pipeline.stage_all(tables, exports, "r", later, code="c2", reuse=False)
    assert validated(forced) == {n: r.files for n, r in forced.items()}


def test_a_staging_that_refuses_a_file_keeps_no_validated_rows(session, tmp_path: Path):
    """A refused file stops the source's staging; the other new files' validated rows are not
    kept for a later run to take without checking them again."""
    orders = tmp_path / "exports" / "orders"
    write_csv(orders / "a.csv", [good_order(1)])
    bad = write_csv(orders / "b.csv", [good_order(2)])
    bad.write_text(bad.read_text().rstrip("\r\n") + ",extra\n")  # one field too many
    lake = tmp_path / "lake"
    tables = SparkTables(session, lake)
    with pytest.raises(IngestError, match="orders/b.csv: line 2 has 9 fields"):
        pipeline.stage_all(tables, tmp_path / "exports", "run", AT, code="c1")
    folder = lake / "tables" / VALIDATED_DIR / "orders"
    assert not folder.exists() or not any(folder.iterdir())
    (orders / "b.csv").unlink()
    reports = pipeline.stage_all(tables, tmp_path / "exports", "run", AT, code="c1")
    assert reports["orders"].files_validated == 1 and reports["orders"].rows_staged == 1


def test_an_erasure_deletes_the_validated_files_even_when_it_finds_no_one(tmp_path: Path):
    """The lake's working tables are kept when the erased person is not found in them (a later
    erasure by email can find people there); the export files' validated rows are not: the
    lookup does not read them, and no staging would take them again under the new register."""
    from engagement_box.governance import erasure

    lake = tmp_path / "lake"
    kept = lake / "tables" / "staging.orders" / "w1"
    kept.mkdir(parents=True)
    (kept.parent / "_current").write_text("w1")
    entry = lake / "tables" / VALIDATED_DIR / "orders" / "e1"
    entry.mkdir(parents=True)
    (entry / "part-0.parquet").write_bytes(b"rows of the person")
    erasure.erase_from_lake(lake, erasure._Subjects(email={"nobody@example.com"}), found=False)
    assert not (lake / "tables" / VALIDATED_DIR).exists()
    assert kept.is_dir()
    assert not [p.name for p in lake.iterdir() if p.name.startswith(".")]  # nothing set aside


def test_a_file_rewritten_after_it_was_hashed_is_refused_not_kept(session, tmp_path: Path):
    """The run hashes the exports before Spark reads them (the version's inputs, the folders'
    names): a file rewritten in between kept its new rows under the old content's name, and a
    later run took them for that content (a review)."""
    write_csv(tmp_path / "exports" / "orders" / "a.csv", [good_order(1)])
    hashed = {"orders/a.csv": "0" * 64}  # what the run hashed: another content than now
    tables = SparkTables(session, tmp_path / "lake")
    with pytest.raises(IngestError, match="orders/a.csv: the file changed while it was read"):
        pipeline.stage_all(tables, tmp_path / "exports", "run", AT, digests=hashed, code="c1")
    folder = tmp_path / "lake" / "tables" / VALIDATED_DIR / "orders"
    assert not folder.exists() or not any(folder.iterdir())


def test_a_file_removed_after_it_was_hashed_is_named_as_removed(tmp_path: Path):
    """A file deleted while the run read the exports: the check named the first file of the
    staging as "changed", though it was intact (a re-review)."""
    from engagement_box.spark.staging import _changed_since_hashed
    from engagement_box.staging.reading import ExportFile, file_sha256

    exports = []
    for name in ("a.csv", "z.csv"):
        path = tmp_path / name
        path.write_text(f"{name}\n")
        exports.append(ExportFile("orders", path, f"orders/{name}", 6, 0, 0))
    digests = {e.relpath: file_sha256(e.path) for e in exports}
    assert _changed_since_hashed(exports, digests) is None
    (tmp_path / "z.csv").unlink()
    assert _changed_since_hashed(exports, digests) == (
        "orders/z.csv: the file was removed while the run read it"
    )
    (tmp_path / "a.csv").write_text("other\n")
    assert _changed_since_hashed(exports, digests).startswith(
        "orders/a.csv: the file changed while it was read"
    )


def test_empty_exports_are_not_said_to_be_copies_of_each_other(tmp_path: Path):
    """Header-only exports (a day with nothing new) are the same bytes: each was said to hold
    "the same content as" the first and to have its rows quarantined (a review of the DuckDB
    engine, whose rule this is). A file with rows sent twice is still a copy."""
    from engagement_box.spark.staging import _copies
    from engagement_box.staging.reading import ExportFile, file_sha256

    orders = tmp_path / "orders"
    paths = [
        write_csv(orders / "a.csv", [good_order(1)]),
        write_csv(orders / "b.csv", [good_order(1)]),
        write_csv(orders / "c.csv", [], header=ORDER_HEADER),
        write_csv(orders / "d.csv", [], header=ORDER_HEADER),
    ]
    exports = [ExportFile("orders", p, f"orders/{p.name}", p.stat().st_size, 0, 0) for p in paths]
    digests = {e.relpath: file_sha256(e.path) for e in exports}
    rows = {"orders/a.csv": 1, "orders/b.csv": 1, "orders/c.csv": 0}  # d.csv: none counted
    assert _copies(exports, digests, rows) == {"orders/b.csv": "orders/a.csv"}
