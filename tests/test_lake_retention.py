"""Retention of the Spark engine's lake: the newest ENGAGEMENT_KEEP_VERSIONS versions younger
than ENGAGEMENT_KEEP_DAYS days stay, the current one always; an expired version leaves new
sessions at once and its folders stay a day for sessions attached before (no Spark needed: the
lake is written with polars in the layout `engagement_box/spark/lake.py` publishes)."""

import json
import os
from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl
import pytest

from engagement_box.spark import lake

START = datetime(2026, 6, 1, 3, 0, 0)


def folder(tmp_path, name: str, frame: pl.DataFrame):
    path = tmp_path / "written" / name
    path.mkdir(parents=True)
    frame.write_parquet(path / "part-00000.parquet")
    return path


def publish(tmp_path, root, n: int, monkeypatch, at: datetime) -> dict:
    """Version `n`: customer_value of one as-of per version, and a small model_fit."""
    as_of = date(2026, 1, 1) + timedelta(days=30 * n)
    marts = {
        "customer_value": folder(
            tmp_path,
            f"cv{n}",
            pl.DataFrame({"customer_id": ["C1", "C2"], "clv": [1.0 * n, 2.0 * n]}).with_columns(
                pl.lit(as_of).alias("as_of")
            ),
        ),
        "model_fit": folder(tmp_path, f"mf{n}", pl.DataFrame({"model": ["bgnbd"], "r": [0.1 * n]})),
    }
    monkeypatch.setattr(lake, "_now", lambda: at)
    return lake.publish(root, marts, {"as_of": str(as_of)})


def file_time(path) -> datetime:
    """When the file system says `path` was written, as `lake` reads it (naive UTC): tests
    take their times from it, never from the clock (faked or not, the kernel writes the real
    time on files)."""
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)


def history_ids(con, mart: str = "customer_value") -> list[int]:
    rows = con.execute(
        f"SELECT DISTINCT snapshot_id FROM marts.history_{mart} ORDER BY snapshot_id"
    ).fetchall()
    return [r[0] for r in rows]


def attached(root):
    con = duckdb.connect()
    lake.attach(con, root)
    return con


@pytest.fixture
def four(tmp_path, monkeypatch):
    """A lake of four versions published a day apart."""
    root = tmp_path / "lake"
    for n in range(1, 5):
        publish(tmp_path, root, n, monkeypatch, START + timedelta(days=n))
    return root


def test_the_newest_versions_stay_and_the_expired_leave_new_sessions_at_once(four):
    before = attached(four)  # an analyst's session from before the policy ran
    now = START + timedelta(days=5)

    kept = lake.retain(four, keep_versions=2, keep_days=400, now=now)

    assert (kept.expired, kept.deleted, kept.kept) == ([1, 2], [], 2)
    assert history_ids(attached(four)) == history_ids(attached(four), "model_fit") == [3, 4]
    assert lake.current(four)["snapshot_id"] == 4
    # within the grace the expired versions' folders stay, for the sessions attached before
    assert history_ids(before) == [1, 2, 3, 4]
    assert before.execute("SELECT sum(clv) FROM marts.history_customer_value").fetchone()[0] == 30
    # a day later the next policy run deletes them; nothing else moves
    later = lake.retain(four, keep_versions=2, keep_days=400, now=now + lake.EXPIRED_GRACE)
    assert (later.expired, later.deleted, later.kept) == ([], [1, 2], 2)
    assert lake.snapshot_ids(four) == [3, 4]
    assert history_ids(attached(four)) == [3, 4]
    assert lake.current(four)["expired"] == {}
    # the session attached before reads the versions still there (every query of it failed
    # on the first deleted folder; a review found it in the DuckDB engine's published file)
    assert history_ids(before) == [3, 4]


def test_versions_older_than_keep_days_expire_but_never_the_current_one(four):
    # four versions published 1-4 days after START; 100 days on, every one is too old
    kept = lake.retain(four, keep_versions=30, keep_days=30, now=START + timedelta(days=100))

    assert (kept.expired, kept.kept) == ([1, 2, 3], 1)
    assert history_ids(attached(four)) == [4]
    con = attached(four)
    assert con.execute("SELECT sum(clv) FROM marts.customer_value").fetchone()[0] == 12


def test_a_new_version_after_expiry_keeps_counting_up(tmp_path, four, monkeypatch):
    """Ids are never used twice, even once every older folder is deleted."""
    now = START + timedelta(days=10)
    lake.retain(four, keep_versions=1, keep_days=400, now=now)
    lake.retain(four, keep_versions=1, keep_days=400, now=now + lake.EXPIRED_GRACE)
    assert lake.snapshot_ids(four) == [4]

    record = publish(tmp_path, four, 5, monkeypatch, now + timedelta(days=2))

    assert record["snapshot_id"] == 5
    assert history_ids(attached(four)) == [4, 5]


def test_an_erasure_reaches_an_expired_version_in_its_grace(four):
    before = attached(four)
    lake.retain(four, keep_versions=2, keep_days=400, now=START + timedelta(days=5))

    removed = lake.erase_customers(four, ["C1"])

    assert removed["customer_value"] == 4  # every version's row of C1, the expired ones too
    assert before.execute(
        "SELECT count(*) FROM marts.history_customer_value WHERE customer_id = 'C1'"
    ).fetchone() == (0,)


def test_a_lake_published_before_versions_were_recorded(four):
    """A record without `retained` (written before retention): attach shows every version on
    disk, and the policy counts them from their folders."""
    pointer = four / "marts" / lake.POINTER
    record = json.loads(pointer.read_text())
    del record["retained"], record["expired"]
    pointer.write_text(json.dumps(record))
    assert history_ids(attached(four)) == [1, 2, 3, 4]

    now = file_time(lake.history_dir(four, "customer_value", 4))
    kept = lake.retain(four, keep_versions=3, keep_days=400, now=now)

    assert (kept.expired, kept.kept) == ([1], 3)
    assert history_ids(attached(four)) == [2, 3, 4]


def test_a_deletion_stopped_before_its_record_is_finished_next_time(four):
    now = START + timedelta(days=5)
    lake.retain(four, keep_versions=2, keep_days=400, now=now)
    # as if stopped after deleting version 1's folders, before the record said so
    for path in (four / "history").glob("*/snapshot_id=1"):
        for file in path.iterdir():
            file.unlink()
        path.rmdir()

    later = lake.retain(four, keep_versions=2, keep_days=400, now=now + lake.EXPIRED_GRACE)

    assert later.deleted == [1, 2]
    assert lake.snapshot_ids(four) == [3, 4]
    assert lake.current(four)["expired"] == {}


def test_keep_versions_below_one_is_refused(four):
    with pytest.raises(ValueError, match="at least 1"):
        lake.retain(four, keep_versions=0, keep_days=400)


def test_keep_days_beyond_the_calendar_expires_nothing_by_age(four):
    """ENGAGEMENT_KEEP_DAYS=1000000 ("never by age", which the DuckDB engine takes) failed the
    Spark run's last step with "date value out of range", after it had published."""
    kept = lake.retain(four, keep_versions=30, keep_days=1_000_000, now=START + timedelta(days=9))
    assert (kept.expired, kept.kept) == ([], 4)


def test_an_old_lake_erased_from_keeps_its_versions_ages(four):
    """A lake published before versions were recorded: a version's age came from its folders'
    newest time, which an erasure sets to the day of the erasure (its folders holding the
    person are rewritten), so versions past ENGAGEMENT_KEEP_DAYS were kept 400 days more."""
    pointer = four / "marts" / lake.POINTER
    record = json.loads(pointer.read_text())
    del record["retained"], record["expired"]
    pointer.write_text(json.dumps(record))
    assert lake.erase_customers(four, ["C1"])["customer_value"] == 4
    erased = file_time(lake.history_dir(four, "customer_value", 1))  # the erasure's time
    for n in range(1, 5):  # the folders the erasure left: published 500-497 days before it
        published = (erased - timedelta(days=501 - n)).replace(tzinfo=UTC).timestamp()
        os.utime(lake.history_dir(four, "model_fit", n), (published, published))

    kept = lake.retain(four, keep_versions=30, keep_days=400, now=erased + timedelta(days=1))

    assert (kept.expired, kept.kept) == ([1, 2, 3], 1)


def test_what_a_stopped_publish_left_is_deleted_after_the_grace(tmp_path, four, monkeypatch):
    """A publish stopped after one mart's folder was renamed into place left a version in
    neither list (attach does not show it, retention never deleted it), and the folder it was
    writing stayed hidden beside it."""
    left = lake.history_dir(four, "customer_value", 5)
    left.mkdir()
    pl.DataFrame({"customer_id": ["C9"], "clv": [1.0]}).write_parquet(left / "part-0.parquet")
    writing = left.with_name(".writing-snapshot_id=5-abc")
    writing.mkdir()
    now = file_time(writing)  # within the grace of what was left
    publish(tmp_path, four, 6, monkeypatch, now)

    first = lake.retain(four, keep_versions=30, keep_days=100_000, now=now)
    assert (first.expired, first.deleted) == ([], [])
    assert history_ids(attached(four)) == [1, 2, 3, 4, 6]
    later = lake.retain(four, keep_versions=30, keep_days=100_000, now=now + lake.EXPIRED_GRACE)

    assert later.deleted == [5] and not left.exists() and not writing.exists()
    assert lake.snapshot_ids(four) == [1, 2, 3, 4, 6]


def test_an_erasure_deletes_what_a_stopped_publish_was_writing(four):
    """A stopped publish's hidden copy of a mart held the person after `erase`."""
    writing = four / "history" / "customer_value" / ".writing-snapshot_id=5-abc"
    writing.mkdir()
    pl.DataFrame({"customer_id": ["C1", "C2"], "clv": [1.0, 2.0]}).write_parquet(
        writing / "part-0.parquet"
    )
    lake.erase_customers(four, ["C1"])
    assert not writing.exists()


def test_an_old_lake_never_shows_a_version_a_stopped_publish_left_above_the_current(
    tmp_path, four, monkeypatch
):
    """A lake published before versions were recorded counted every folder on disk as a
    version: one a publish left when it stopped (above the record's current id, never current)
    was shown in history_<mart> and kept for good."""
    pointer = four / "marts" / lake.POINTER
    record = json.loads(pointer.read_text())
    del record["retained"], record["expired"]
    pointer.write_text(json.dumps(record))
    left = lake.history_dir(four, "customer_value", 5)
    left.mkdir()
    pl.DataFrame({"customer_id": ["C9"], "clv": [999.0]}).write_parquet(left / "part-0.parquet")
    now = file_time(left)

    publish(tmp_path, four, 6, monkeypatch, now)
    assert history_ids(attached(four)) == [1, 2, 3, 4, 6]
    lake.retain(four, keep_versions=30, keep_days=100_000, now=now)
    later = lake.retain(four, keep_versions=30, keep_days=100_000, now=now + lake.EXPIRED_GRACE)
    assert later.deleted == [5] and not left.exists()


def test_a_column_a_later_version_adds_is_in_the_history_of_every_version(tmp_path, monkeypatch):
    """persona_profile.model_fitted_as_of came with a release: the history view read every
    version with the first file's columns, so while an older version was retained the column
    was gone from all of them, new ones too (a re-review). By name: NULL in the older ones."""
    root = tmp_path / "lake"
    publish(tmp_path, root, 1, monkeypatch, START)
    newer = {
        "customer_value": folder(
            tmp_path,
            "cv_new",
            pl.DataFrame(
                {"customer_id": ["C1"], "clv": [5.0], "as_of": [date(2026, 3, 2)]}
            ).with_columns(pl.lit(date(2026, 1, 31)).alias("model_fitted_as_of")),
        ),
        "model_fit": folder(tmp_path, "mf_new", pl.DataFrame({"model": ["bgnbd"], "r": [0.3]})),
    }
    monkeypatch.setattr(lake, "_now", lambda: START + timedelta(days=1))
    lake.publish(root, newer, {"as_of": "2026-03-02"})
    con = attached(root)
    rows = con.execute(
        "SELECT snapshot_id, customer_id, model_fitted_as_of FROM marts.history_customer_value "
        "ORDER BY ALL"
    ).fetchall()
    assert rows == [(1, "C1", None), (1, "C2", None), (2, "C1", date(2026, 1, 31))]


def test_the_quarantine_read_as_the_readme_says_counts_the_current_write_only(tmp_path):
    """README's query of the Spark quarantine read every write's files: after a staging step run
    alone (no publish to delete the earlier write), it counted each row twice (a re-review)."""
    import duckdb
    import polars as pl

    from engagement_box.spark.tables import current_files, prune_superseded

    table = tmp_path / "lake" / "tables" / "staging.quarantine"
    for write, rows in (("w1", 3), ("w2", 2)):
        (table / write).mkdir(parents=True)
        pl.DataFrame({"source": ["orders"] * rows, "reason": ["malformed"] * rows}).write_parquet(
            table / write / "part-0.parquet"
        )
    (table / "_current").write_text("w2", encoding="utf-8")
    files = current_files(tmp_path / "lake", "staging.quarantine")
    counted = duckdb.execute(
        "SELECT source, reason, count(*) FROM read_parquet($files) GROUP BY ALL", {"files": files}
    ).fetchall()
    assert counted == [("orders", "malformed", 2)]
    # the publish deletes the earlier write; the current one stays
    assert prune_superseded(tmp_path / "lake")[0] == 1
    assert sorted(p.name for p in table.iterdir()) == ["_current", "w2"]


def test_a_version_of_an_earlier_as_of_is_kept_beside_the_current_one(tmp_path, four, monkeypatch):
    """A Spark user's review: a run with ENGAGEMENT_AS_OF four months back became the current
    version, so the marts (and the audience files) went back in time. As the DuckDB engine's,
    such a backfill is retained and readable in history while the later as-of stays current;
    a version of the same as-of or a later one becomes current."""
    before = lake.current(four)
    backfill = publish(tmp_path, four, 0, monkeypatch, START + timedelta(days=5))
    assert backfill["snapshot_id"] == 5 and backfill["current"] is False
    record = lake.current(four)
    assert record["snapshot_id"] == before["snapshot_id"] == 4
    assert record["marts"] == before["marts"] and "5" in record["retained"]
    con = attached(four)
    assert history_ids(con) == [1, 2, 3, 4, 5]
    assert con.execute("SELECT max(clv) FROM marts.customer_value").fetchone() == (8.0,)
    later = publish(tmp_path, four, 5, monkeypatch, START + timedelta(days=6))
    assert later["current"] is True and lake.current(four)["snapshot_id"] == 6
    assert lake.becomes_current(lake.current(four), {"as_of": later["settings"]["as_of"]})
    assert "5" in lake.current(four)["retained"]
