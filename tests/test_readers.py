"""The file analysts open: a published copy, replaced whole, that readers and runs never wait on."""

import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from engagement_box.frames import write_frame
from engagement_box.governance import erasure, privacy, readers, versions
from engagement_box.sql import load_sql
from tests.test_versions import publish_version

NOW = datetime(2026, 3, 1, 12, 0)


@pytest.fixture
def layout(tmp_path: Path) -> readers.Layout:
    published = tmp_path / "warehouse" / "engagement.duckdb"
    published.parent.mkdir()
    return readers.Layout(published=published, working=readers.default_working(published))


@pytest.fixture
def working(layout):
    con = duckdb.connect(str(layout.working))
    yield con
    con.close()


def read(path: Path, sql: str):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def two_versions(working, layout) -> None:
    publish_version(working, "2025-01-31", {"a": "Champions", "b": "At Risk"}, {"a": 20, "b": 1})
    readers.publish(working, layout, now=NOW)
    publish_version(working, "2025-02-28", {"a": "At Risk", "b": "At Risk"}, {"a": 5, "b": 1})
    readers.publish(working, layout, now=NOW)


def test_every_query_the_readme_shows_works_on_the_published_file(working, layout):
    working.execute("CREATE SCHEMA staging")
    working.execute(load_sql("staging/create_quarantine"))
    working.execute(
        "INSERT INTO staging.quarantine (source, source_file, source_row, reason, reasons, "
        "raw_values, quarantined_at) VALUES ('orders', 'o.csv', 1, 'in_future', "
        "['ordered_at:in_future'], '{}', TIMESTAMP '2026-01-01')"
    )
    two_versions(working, layout)

    published = layout.published
    assert read(published, "SELECT snapshot_id, is_current FROM marts.snapshots") == [
        (1, False),
        (2, True),
    ]
    assert read(published, "SELECT * FROM marts.customer_rfm ORDER BY 1") == [
        ("a", "At Risk"),
        ("b", "At Risk"),
    ]
    assert read(published, "SELECT * FROM marts.customer_rfm_at(1) ORDER BY 1") == [
        ("a", "Champions"),
        ("b", "At Risk"),
    ]
    assert read(
        published,
        "SELECT count(*) FROM marts.customer_rfm_at("
        "(SELECT snapshot_id FROM marts.snapshots WHERE is_current))",
    ) == [(2,)]
    assert read(
        published,
        "SELECT snapshot_id, count(*) FROM history.customer_rfm "
        "WHERE snapshot_id IN (1, 2) GROUP BY ALL ORDER BY 1",
    ) == [(1, 2), (2, 2)]
    assert read(
        published,
        "SELECT from_value, to_value, customers FROM marts.segment_migration "
        "WHERE to_snapshot = 2 AND moved AND dimension = 'rfm_segment'",
    ) == [("Champions", "At Risk", 1)]
    assert read(published, "SELECT source, reason, count(*) FROM staging.quarantine GROUP BY ALL")
    # Closed, with no write-ahead log; the pipeline's own schemas stay out of it.
    assert not published.with_name(published.name + ".wal").exists()
    schemas = {r[0] for r in read(published, "SELECT schema_name FROM duckdb_schemas()")}
    assert "work" not in schemas and "intermediate" not in schemas
    assert not list(published.parent.glob(".*building*"))


def test_the_published_current_version_holds_one_row_at_most_as_its_description_says(
    working, layout
):
    """Its description (the column comment analysts read) says the key allows one row; the
    published copy had no key, its rows copied without the working table's constraints."""
    two_versions(working, layout)
    constraints = read(
        layout.published,
        "SELECT constraint_type FROM duckdb_constraints() "
        "WHERE schema_name = 'marts' AND table_name = 'current_version' ORDER BY 1",
    )
    assert ("PRIMARY KEY",) in constraints and ("CHECK",) in constraints
    assert read(layout.published, "SELECT snapshot_id FROM marts.current_version") == [(2,)]
    described = read(
        layout.published,
        "SELECT comment FROM duckdb_columns() WHERE schema_name = 'marts' "
        "AND table_name = 'current_version' AND column_name = 'singleton'",
    )
    assert "one row" in described[0][0]
    copy = duckdb.connect(str(layout.published))  # an analyst's writable copy refuses a second
    try:
        with pytest.raises(duckdb.ConstraintException):
            copy.execute("INSERT INTO marts.current_version (snapshot_id) VALUES (1)")
    finally:
        copy.close()


def test_each_version_is_written_to_parquet_once(working, layout):
    two_versions(working, layout)
    first = layout.history_file("customer_rfm", 1)
    written = first.stat().st_mtime_ns, first.stat().st_ino

    publish_version(working, "2025-03-31", {"a": "Champions"}, {"a": 30})
    done = readers.publish(working, layout, now=NOW)

    assert done.built
    assert sorted(Path(p).name for p in done.files_written) == ["snapshot_3.parquet"] * 2
    assert (first.stat().st_mtime_ns, first.stat().st_ino) == written
    # Nothing changed: nothing is rebuilt.
    assert not readers.publish(working, layout, now=NOW).built


def test_a_file_that_changed_reaches_the_published_file_and_a_killed_build_is_removed(
    working, layout
):
    """A changed export whose rows were all quarantined again left the published file with
    the first ingest's quarantine (the token counted files, not what they brought). And a
    publish killed mid-build left `.<name>.<pid>.building` beside the file for good, with
    rows an erasure since removed everywhere else."""
    two_versions(working, layout)
    from engagement_box.sql import load_sql

    working.execute("CREATE SCHEMA IF NOT EXISTS staging")
    working.execute(load_sql("staging/create_ingested_files"))
    file_row = (
        "INSERT OR REPLACE INTO staging.ingested_files (source, source_file, sha256, size_bytes, "
        "mtime_ns, rows_read, rows_staged, rows_quarantined, ingested_at) "
        "VALUES ('orders', 'orders/late.csv', $sha, 10, 1, $n, 0, $n, $at)"
    )
    working.execute(file_row, {"sha": "first", "n": 1, "at": NOW})
    assert readers.publish(working, layout, now=NOW).built
    working.execute(file_row, {"sha": "second", "n": 2, "at": NOW + timedelta(hours=1)})
    killed = layout.published.with_name(f".{layout.published.name}.99999.building")
    killed.write_bytes(b"a killed publish's half-built file")
    killed.with_name(killed.name + ".wal").write_bytes(b"its log")

    assert readers.publish(working, layout, now=NOW).built
    assert read(
        layout.published, "SELECT sha256, rows_quarantined FROM staging.ingested_files"
    ) == [("second", 2)]
    assert not list(layout.published.parent.glob("*.building*"))
    assert not readers.publish(working, layout, now=NOW).built  # and then it is up to date


def test_a_damaged_published_file_or_a_lost_history_file_is_rebuilt(working, layout):
    """The analysts' file overwritten, or a retained version's history file deleted: readers
    failed ("not a valid DuckDB database file", "No files found"), while every run said
    "nothing to do" with exit 0, since the file's record said it was current. Both are now a
    reason to build it again, and the build restores the missing file."""
    two_versions(working, layout)
    assert readers.behind(working, layout) is None
    layout.published.write_bytes(b"garbage, not a database")
    assert "was not the file the last publish built" in readers.behind(working, layout)
    assert readers.publish(working, layout, now=NOW).built
    assert read(layout.published, "SELECT count(*) FROM marts.customer_rfm_at(1)") == [(2,)]

    lost = layout.history_file("customer_rfm", 1)
    lost.unlink()
    assert "history file(s) of retained versions were missing" in readers.behind(working, layout)
    assert readers.publish(working, layout, now=NOW).built
    assert lost.exists()
    assert read(layout.published, "SELECT count(*) FROM history.customer_rfm") == [(4,)]
    assert readers.behind(working, layout) is None
    assert not readers.publish(working, layout, now=NOW).built  # and then it is up to date

    # a history file cut short: "No magic bytes found at end of file" for every reader
    lost.write_bytes(lost.read_bytes()[:100])
    assert "cut short or damaged" in readers.behind(working, layout)
    assert readers.publish(working, layout, now=NOW).built
    assert read(layout.published, "SELECT count(*) FROM history.customer_rfm") == [(4,)]

    # Someone holding it open for writing (`duckdb <file>` opens so): its lock keeps a read
    # from opening it, which is no damage; the file was built again on every run.
    assert_left_alone_while_held(working, layout, HOLD_OPEN)


HOLD_OPEN = (
    "import duckdb, sys, time\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "print('holding', flush=True)\n"
    "time.sleep(60)\n"
)


def assert_left_alone_while_held(working, layout, script: str) -> None:
    """While another process runs `script` on the published file (it opens it for writing and
    holds it), nothing is behind and a publish builds nothing."""
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(layout.published)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert readers.behind(working, layout) is None
        assert not readers.publish(working, layout, now=NOW).built
    finally:
        holder.kill()
        holder.wait()


WRITE_AND_HOLD = (
    "import duckdb, sys, time\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "con.execute('CREATE TABLE main.mine AS SELECT 1 AS a')\n"
    "con.execute('CHECKPOINT')\n"
    "print('holding', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_file_written_by_a_session_still_open_is_not_replaced_under_it(working, layout):
    """A session that wrote into the published file is no longer the file built; replaced
    while that session held it, the session's next write put a log beside the new file that
    no reader could replay. It is replaced once the session closes."""
    two_versions(working, layout)
    assert_left_alone_while_held(working, layout, WRITE_AND_HOLD)
    assert "was not the file the last publish built" in readers.behind(working, layout)
    assert readers.publish(working, layout, now=NOW).built
    assert readers.behind(working, layout) is None


def test_a_log_a_stopped_session_left_beside_the_file_gets_it_built_again(working, layout):
    """An analyst's read-write session (the DuckDB CLI's default) dropped a view and was
    killed before its checkpoint: its log stayed beside the published file, which itself was
    unchanged, so every run said "nothing to do" while every reader replayed the drop (here:
    a table the session made)."""
    two_versions(working, layout)
    script = (
        "import duckdb, os, sys\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute(\"SET checkpoint_threshold = '1GB'\")\n"
        "con.execute('CREATE TABLE main.analyst_scratch AS SELECT 1 AS a')\n"
        "os._exit(0)  # killed before any checkpoint\n"
    )
    subprocess.run([sys.executable, "-c", script, str(layout.published)], check=True)
    wal = layout.published.with_name(layout.published.name + ".wal")
    assert wal.exists()
    assert "had a write-ahead log beside it" in readers.behind(working, layout)
    assert readers.publish(working, layout, now=NOW).built
    assert not wal.exists() and readers.behind(working, layout) is None
    reader = duckdb.connect(str(layout.published), read_only=True)
    try:
        tables = reader.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        assert ("analyst_scratch",) not in tables
    finally:
        reader.close()


def test_a_version_an_erasure_emptied_keeps_an_empty_file_not_a_missing_one(working, layout):
    """An erasure that removed every row of a version's mart deleted its Parquet file, while the
    publish log still counted rows: the next run took the file for lost and built the
    published file again. It keeps an empty file."""
    two_versions(working, layout)
    working.execute("DELETE FROM history_rows.customer_rfm WHERE snapshot_id = 1")
    assert readers.publish(working, layout, erased=True, now=NOW).built
    assert read(layout.published, "SELECT count(*) FROM marts.customer_rfm_at(1)") == [(0,)]
    assert readers.behind(working, layout) is None


def test_the_published_quarantine_masks_emails_and_handles(working, layout):
    """Analysts open the published file, and its staging.quarantine held raw emails and handles
    (321 rows on the sample). They are masked there as in messages; the working database keeps
    the rows as read, and source_file / source_row find them in the export."""
    working.execute("CREATE SCHEMA staging")
    working.execute(load_sql("staging/create_quarantine"))
    raw = {"customer_id": "C7", "email": "ann.lee@mail.test", "social_handles": "@ann"}
    # a value whose quotes are escaped in the JSON text, before a handle (the JSON broke)
    quoted = {"customer_id": "C8", "email": "\tbo@mail.test", "social_handles": '"@bo"'}
    for row, values in ((7, raw), (8, quoted)):
        working.execute(
            "INSERT INTO staging.quarantine (source, source_file, source_row, reason, detail, "
            "reasons, raw_values, quarantined_at) VALUES ('customers', 'c.csv', $row, 'email', "
            "'not an address: ann@', ['email:malformed'], $raw, TIMESTAMP '2026-01-01')",
            {"row": row, "raw": json.dumps(values)},
        )
    two_versions(working, layout)
    published = read(
        layout.published,
        "SELECT raw_values, detail, source_row FROM staging.quarantine ORDER BY source_row",
    )
    assert [(json.loads(r), d, n) for r, d, n in published] == [
        ({"customer_id": "C7", "email": "a***@mail.test", "social_handles": "@a***"},
         "not an address: a***@", 7),
        ({"customer_id": "C8", "email": "\tb***@mail.test", "social_handles": '"@b***"'},
         "not an address: a***@", 8),
    ]  # fmt: skip
    assert working.execute(
        "SELECT raw_values->>'email' FROM staging.quarantine ORDER BY source_row"
    ).fetchone() == ("ann.lee@mail.test",)


def quarantine_table(working) -> str:
    """An empty staging.quarantine in the working database; returns the statement inserting a
    customers row ($row, $raw: its raw values as JSON)."""
    working.execute("CREATE SCHEMA staging")
    working.execute(load_sql("staging/create_quarantine"))
    return (
        "INSERT INTO staging.quarantine (source, source_file, source_row, reason, reasons, "
        "raw_values, quarantined_at) VALUES ('customers', 'c.csv', $row, 'malformed', "
        "['email:malformed'], $raw, TIMESTAMP '2026-01-01')"
    )


def unmask_published(layout, raw: dict) -> None:
    """Write `raw` into every quarantine row of the published file, unmasked, by hand."""
    by_hand = duckdb.connect(str(layout.published))
    try:
        by_hand.execute("UPDATE staging.quarantine SET raw_values = $raw", {"raw": json.dumps(raw)})
    finally:
        by_hand.close()


def test_the_masked_quarantine_is_copied_from_the_file_analysts_have_while_it_is_the_same(
    working, layout, monkeypatch
):
    """Masking the whole quarantine again on every publish cost 1.8-2.0 CPU-s at 1M customers
    and grew with it. The next file copies the masked rows of the file analysts have while the
    working quarantine holds the same rows (and the masking is the same); a changed
    quarantine, or a file without the record, is masked anew."""
    insert = quarantine_table(working)
    working.execute(insert, {"row": 1, "raw": json.dumps({"email": "ann@mail.test"})})
    two_versions(working, layout)  # masked at the first build

    def no_masking(con):
        raise AssertionError("masked again, though the quarantine is the same")

    monkeypatch.setattr(readers, "_masked_quarantine", no_masking)
    publish_version(working, "2025-03-31", {"a": "At Risk"}, {"a": 1})
    assert readers.publish(working, layout, now=NOW).built  # copied, not masked
    quarantined = "SELECT raw_values->>'email' FROM staging.quarantine ORDER BY source_row"
    assert read(layout.published, quarantined) == [("a***@mail.test",)]

    monkeypatch.undo()
    # A file put there by hand (a backup from before an erasure, say) with other rows: its
    # quarantine is not copied, whatever the working database recorded.
    by_hand = duckdb.connect(str(layout.published))
    try:
        by_hand.execute(insert, {"row": 9, "raw": json.dumps({"email": "kept@mail.test"})})
    finally:
        by_hand.close()
    publish_version(working, "2025-04-15", {"a": "At Risk"}, {"a": 1})
    assert readers.publish(working, layout, now=NOW).built
    assert read(layout.published, quarantined) == [("a***@mail.test",)]

    # A new quarantine row: only it is masked, the rows the file holds are copied (masking
    # the whole quarantine on every publish grew with it: 3-7 CPU-s at 1M customers).
    masked = []
    masked_json = privacy.masked_json
    monkeypatch.setattr(
        privacy, "masked_json", lambda text: masked.append(text) or masked_json(text)
    )
    working.execute(insert, {"row": 2, "raw": json.dumps({"email": "bob@mail.test"})})
    publish_version(working, "2025-04-30", {"a": "At Risk"}, {"a": 1})
    assert readers.publish(working, layout, now=NOW).built
    assert read(layout.published, quarantined) == [("a***@mail.test",), ("b***@mail.test",)]
    assert masked == [json.dumps({"email": "bob@mail.test"})]
    # and the same file as masking every row gives
    whole = read(layout.published, "SELECT * FROM staging.quarantine ORDER BY source_row")
    layout.published.unlink()
    publish_version(working, "2025-05-31", {"a": "At Risk"}, {"a": 1})
    assert readers.publish(working, layout, now=NOW).built
    assert len(masked) == 3  # every row masked anew: the file analysts had is gone
    again = read(layout.published, "SELECT * FROM staging.quarantine ORDER BY source_row")
    assert again == whole


def test_a_file_with_the_same_quarantine_rows_unmasked_is_not_copied(working, layout):
    """A copy of the working database put at the published path holds the quarantine's rows
    by the same keys, unmasked. The next files copied its rows as they were, and kept them
    through reruns and erasures: the file's own masked values are checked before any copy."""
    insert = quarantine_table(working)
    working.execute(insert, {"row": 1, "raw": json.dumps({"email": "ann@mail.test"})})
    two_versions(working, layout)
    quarantined = "SELECT raw_values->>'email' FROM staging.quarantine ORDER BY source_row"
    assert read(layout.published, quarantined) == [("a***@mail.test",)]

    def unmask() -> None:
        unmask_published(layout, {"email": "ann@mail.test"})

    unmask()  # the same rows: the whole quarantine would be copied
    publish_version(working, "2025-03-31", {"a": "At Risk"}, {"a": 1})
    assert readers.publish(working, layout, now=NOW).built
    assert read(layout.published, quarantined) == [("a***@mail.test",)]

    unmask()  # and a new row: the rows the file holds would be copied
    working.execute(insert, {"row": 2, "raw": json.dumps({"email": "bob@mail.test"})})
    publish_version(working, "2025-04-30", {"a": "At Risk"}, {"a": 1})
    assert readers.publish(working, layout, now=NOW).built
    assert read(layout.published, quarantined) == [("a***@mail.test",), ("b***@mail.test",)]


def test_a_file_put_at_the_published_path_by_hand_is_replaced_at_the_next_run(
    working, layout, monkeypatch
):
    """The check ran only when a new file was built: a copy put at the published path (an
    unmasked working database, a backup from before an erasure) was served until the inputs
    changed, `run --force` included. The next run sees it (`behind`) and builds the file again,
    every row masked; the publish after that copies from the rebuilt file again. Two equal
    quarantine rows are counted twice: hashes that cancel out would vouch for any copy."""
    insert = quarantine_table(working)
    for _ in range(2):  # the same row twice: nothing the ingest writes, but nothing forbids it
        working.execute(insert, {"row": 1, "raw": json.dumps({"email": "ann@mail.test"})})
    two_versions(working, layout)
    assert readers.behind(working, layout) is None
    quarantined = "SELECT raw_values->>'email' FROM staging.quarantine"
    assert read(layout.published, quarantined) == [("a***@mail.test",)] * 2

    unmask_published(layout, {"email": "ann@mail.test"})
    assert "was not the file the last publish built" in readers.behind(working, layout)
    assert readers.publish(working, layout, now=NOW).built  # the same inputs: rebuilt anyway
    assert read(layout.published, quarantined) == [("a***@mail.test",)] * 2
    assert readers.behind(working, layout) is None

    def no_masking(con, previous=False):
        raise AssertionError("masked again, though the rebuilt file holds the same rows")

    monkeypatch.setattr(readers, "_masked_quarantine", no_masking)
    publish_version(working, "2025-03-31", {"a": "At Risk"}, {"a": 1})
    assert readers.publish(working, layout, now=NOW).built
    assert read(layout.published, quarantined) == [("a***@mail.test",)] * 2


def test_a_copy_of_the_working_database_at_the_published_path_is_replaced(working, layout):
    """With nothing in the quarantine to mask, a copy of the working database put at the
    published path (every staged email and work table in it) passed the quarantine check and
    was served until the inputs changed. The file system tells it apart from the file built."""
    working.execute("CREATE SCHEMA staging")
    working.execute(load_sql("staging/create_quarantine"))  # empty: nothing to mask
    working.execute("CREATE TABLE staging.customers AS SELECT 'ann@mail.test' AS email")
    two_versions(working, layout)
    working.execute("CHECKPOINT")
    shutil.copyfile(layout.working, layout.published)
    assert "was not the file the last publish built" in readers.behind(working, layout)
    assert readers.publish(working, layout, now=NOW).built  # the same inputs: rebuilt anyway
    tables = "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name = 'staging'"
    assert read(layout.published, tables) == [("staging", "quarantine")]
    assert readers.behind(working, layout) is None


def test_time_travel_works_on_the_published_file_attached_under_another_name(working, layout):
    """The README tells analysts to ATTACH the published file to a database of their own. Its
    views worked there, but `eb.marts.customer_rfm_at(1)` failed ("schema history does not
    exist"): a macro's table names bind where it is called. The published macros name none."""
    two_versions(working, layout)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{layout.published}' AS eb (READ_ONLY)")  # ATTACH binds no value
        assert con.execute("SELECT * FROM eb.marts.customer_rfm_at(1) ORDER BY 1").fetchall() == [
            ("a", "Champions"),
            ("b", "At Risk"),
        ]
        assert con.execute(
            "SELECT count(*) FROM eb.marts.customer_rfm_at("
            "(SELECT snapshot_id FROM eb.marts.snapshots WHERE is_current))"
        ).fetchone() == (2,)
        with pytest.raises(duckdb.InvalidInputException, match="version 99 is not a retained"):
            con.execute("SELECT * FROM eb.marts.customer_rfm_at(99)").fetchall()
        # a mart no retained version has rows of: no rows, with its columns, not an error
        working.execute("CREATE TABLE work.nothing (customer_id VARCHAR)")
        versions.publish(
            working, ["nothing"], run_id="r", partition_key=None, as_of="2025-03-31", settings={}
        )
        readers.publish(working, layout, now=NOW)
        con.execute("DETACH eb")
        con.execute(f"ATTACH '{layout.published}' AS eb (READ_ONLY)")
        empty = con.execute("SELECT * FROM eb.marts.nothing_at(3)")
        assert empty.fetchall() == [] and [d[0] for d in empty.description] == ["customer_id"]
        # described where analysts look for descriptions, as the tables are
        (comment,) = con.execute(
            "SELECT comment FROM duckdb_functions() WHERE database_name = 'eb' "
            "AND function_name = 'customer_rfm_at'"
        ).fetchone()
        assert comment.startswith("The rows of marts.customer_rfm in one retained version"), comment
        (history,) = con.execute(
            "SELECT comment FROM duckdb_views() WHERE database_name = 'eb' "
            "AND schema_name = 'history' AND view_name = 'customer_rfm'"
        ).fetchone()
        assert "Key: snapshot_id, customer_id" in history, history
    finally:
        con.close()


def test_time_travel_to_a_version_bound_as_null_says_so(working, layout):
    """A version looked up in Python and bound as a parameter: None (no version has that as-of)
    gave an empty result, as a version without customers would; only the inline subquery said
    "no version given". Bound, it says so too, in the published file and the working one."""
    two_versions(working, layout)
    published = duckdb.connect(str(layout.published), read_only=True)
    try:
        for con in (published, working):
            for query in (
                "SELECT count(*) FROM marts.customer_rfm_at(?)",
                "SELECT * FROM marts.customer_rfm_at($1)",
            ):
                with pytest.raises(duckdb.InvalidInputException, match="no version given"):
                    con.execute(query, [None]).fetchall()
            assert con.execute("SELECT count(*) FROM marts.customer_rfm_at(?)", [1]).fetchone() == (
                2,
            )
    finally:
        published.close()


def test_time_travel_to_a_version_that_is_not_retained_says_so(working, layout):
    """`marts.customer_rfm_at(<an expired or unknown id>)` returned no rows, as a version without
    customers would: an analyst could not tell. Now it is an error naming where to look."""
    two_versions(working, layout)
    versions.apply_retention(working, keep_versions=1, keep_days=10_000, now=NOW)
    readers.publish(working, layout, now=NOW)
    for path in (layout.published, layout.working):
        con = duckdb.connect(str(path), read_only=True) if path == layout.published else working
        try:
            assert con.execute("SELECT count(*) FROM marts.customer_rfm_at(2)").fetchone()[0] == 2
            for version in (1, 99):  # expired; never published
                with pytest.raises(duckdb.InvalidInputException) as refused:
                    con.execute(f"SELECT * FROM marts.customer_rfm_at({version})").fetchall()
                assert f"version {version} is not a retained version" in str(refused.value)
                assert "marts.snapshots" in str(refused.value)
            # the version picked by an as-of no version has: NULL, which compared equal to none
            by_day = (
                "SELECT count(*) FROM marts.customer_rfm_at((SELECT snapshot_id FROM "
                "marts.snapshots WHERE as_of = DATE '2001-01-31'))"
            )
            with pytest.raises(duckdb.InvalidInputException, match="no version given") as refused:
                con.execute(by_day).fetchall()
            assert "marts.snapshots" in str(refused.value)
        finally:
            if path == layout.published:
                con.close()


def test_a_reader_keeps_its_version_until_it_reconnects(working, layout):
    publish_version(working, "2025-01-31", {"a": "Champions"}, {"a": 20})
    readers.publish(working, layout, now=NOW)
    reader = duckdb.connect(str(layout.published), read_only=True)
    try:
        publish_version(working, "2025-02-28", {"a": "At Risk"}, {"a": 5})
        assert readers.publish(working, layout, now=NOW).built  # not refused by the open reader

        assert reader.execute("SELECT segment FROM marts.customer_rfm").fetchall() == [
            ("Champions",)
        ]
        assert reader.execute(
            "SELECT snapshot_id FROM marts.snapshots WHERE is_current"
        ).fetchall() == [(1,)]
        # A second connection of this process gets the database DuckDB already has open: the
        # old version, and the message says what a new one takes.
        again = duckdb.connect(str(layout.published), read_only=True)
        try:
            assert again.execute("SELECT max(snapshot_id) FROM marts.snapshots").fetchone() == (1,)
            with pytest.raises(duckdb.InvalidInputException) as refused:
                again.execute("SELECT * FROM marts.customer_rfm_at(2)").fetchall()
            assert "close every connection to the file in this process, then connect again" in (
                str(refused.value)
            )
        finally:
            again.close()
    finally:
        reader.close()
    assert read(layout.published, "SELECT segment FROM marts.customer_rfm") == [("At Risk",)]


def test_retention_removes_expired_files_after_a_grace_period(working, layout):
    two_versions(working, layout)
    publish_version(working, "2025-03-31", {"a": "Champions"}, {"a": 30})
    readers.publish(working, layout, now=NOW)

    versions.apply_retention(working, keep_versions=2, keep_days=10_000, now=NOW)
    readers.publish(working, layout, now=NOW)
    expired = layout.history_file("customer_rfm", 1)
    assert expired.exists()  # sessions opened before the retention still read it
    assert sorted(
        read(layout.published, "SELECT DISTINCT snapshot_id FROM history.customer_rfm")
    ) == [(2,), (3,)]

    publish_version(working, "2025-04-30", {"a": "Loyal"}, {"a": 40})
    readers.publish(working, layout, now=NOW + readers.EXPIRED_FILES_GRACE + timedelta(hours=1))
    assert not expired.exists()


def test_expired_files_go_after_the_grace_though_nothing_else_changed(working, layout):
    """A quiet month (no new export, retention caught up): the daily retention and runs found
    the published file up to date and kept every expired version's files past the grace."""
    two_versions(working, layout)
    publish_version(working, "2025-03-31", {"a": "Champions"}, {"a": 30})
    versions.apply_retention(working, keep_versions=2, keep_days=10_000, now=NOW)
    readers.publish(working, layout, now=NOW)
    expired, kept = layout.history_file("customer_rfm", 1), layout.history_file("customer_rfm", 2)

    within = readers.publish(working, layout, now=NOW + timedelta(hours=1))
    assert not within.built and expired.exists() and within.files_deleted == []

    after = readers.publish(working, layout, now=NOW + readers.EXPIRED_FILES_GRACE)
    assert not after.built  # nothing else changed: the published file stays as it is
    assert not expired.exists() and str(expired) in after.files_deleted
    assert kept.exists()
    assert sorted(
        read(layout.published, "SELECT DISTINCT snapshot_id FROM history.customer_rfm")
    ) == [(2,), (3,)]


def test_a_column_added_later_reads_in_the_documented_order(working, layout):
    """A warehouse whose mart got a column in a later version (ALTER TABLE ... ADD COLUMN
    puts it last) listed its columns in another order than a new warehouse: a query by
    position, or a `SELECT *` compared between two warehouses, found every row different."""
    first = {"customer_id": ["a"], "segment": ["Loyal"]}
    later = {"customer_id": ["a"], "days_since_last_order": [3], "segment": ["Champions"]}
    for as_of, rows in (("2025-01-31", first), ("2025-02-28", later)):
        write_frame(working, "work", "customer_rfm", pl.DataFrame(rows))
        versions.publish(
            working, ["customer_rfm"], run_id="r", partition_key=None, as_of=as_of,
            settings={"as_of": as_of},
        )  # fmt: skip
        readers.publish(working, layout, now=NOW)

    documented = ["customer_id", "days_since_last_order", "segment"]

    def names(con, relation: str) -> list[str]:
        return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]

    published = duckdb.connect(str(layout.published), read_only=True)
    try:
        for con in (working, published):
            assert names(con, "marts.customer_rfm") == documented
            assert names(con, "history.customer_rfm") == ["snapshot_id", *documented]
            assert names(con, "marts.customer_rfm_at(1)") == documented
        assert published.execute("SELECT * FROM marts.customer_rfm_at(1)").fetchall() == [
            ("a", None, "Loyal")
        ]
    finally:
        published.close()
    version_file = pq.read_schema(layout.history_file("customer_rfm", 2)).names
    assert version_file == ["snapshot_id", *documented]


def test_a_warehouse_from_before_the_working_database_is_adopted(layout):
    con = duckdb.connect(str(layout.published))  # the old layout: everything in one file
    publish_version(con, "2025-01-31", {"a": "Champions"}, {"a": 20})
    con.close()

    assert readers.adopt_single_file(layout)

    assert layout.working.exists()
    con = duckdb.connect(str(layout.working))
    try:
        assert versions.current_version(con) == 1
        readers.publish(con, layout, now=NOW)
    finally:
        con.close()
    assert read(layout.published, "SELECT segment FROM marts.customer_rfm_at(1)") == [
        ("Champions",)
    ]
    assert not readers.adopt_single_file(layout)  # once


def test_an_adopted_warehouse_stays_for_analysts_until_the_first_publish(layout):
    """Moved to the working database (as it was), the old file was gone for analysts until a
    run published (a first run that failed left them none), and an analyst's session open on
    it went with it and held off every write to the working database."""
    con = duckdb.connect(str(layout.published))
    publish_version(con, "2025-01-31", {"a": "Champions"}, {"a": 20})
    con.close()
    analyst = subprocess.Popen(  # a session of another process, as analysts have
        [sys.executable, "-c", HOLD_OPEN.replace("sys.argv[1]", "sys.argv[1], read_only=True"),
         str(layout.published)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert analyst.stdout.readline().strip() == "holding"
        assert readers.adopt_single_file(layout)
        # the pipeline writes the working database while the analyst's session stays open
        with duckdb.connect(str(layout.working)) as working:
            publish_version(working, "2025-02-28", {"a": "At Risk"}, {"a": 5})
    finally:
        analyst.kill()
        analyst.wait()
    # a run that fails before its publish: the old file is there, whole, for new sessions
    assert read(layout.published, "SELECT segment FROM marts.customer_rfm") == [("Champions",)]
    assert not list(layout.working.parent.glob("*.adopting"))


def test_an_old_file_used_again_before_the_first_publish_is_copied_again(layout):
    """A first run here failed after the copy; the release before ran on the old file again
    (a version, an erasure). The next run here published from the stale copy: that work was
    lost, the erased person back. The old file, changed since its copy, is copied again; once
    a publish replaced it, never."""
    con = duckdb.connect(str(layout.published))
    publish_version(con, "2025-01-31", {"a": "Champions"}, {"a": 20})
    con.close()
    assert readers.adopt_single_file(layout)
    assert not readers.adopt_single_file(layout)  # unchanged: the copy stands

    con = duckdb.connect(str(layout.published))  # the release before, on the old file
    publish_version(con, "2025-02-28", {"a": "At Risk"}, {"a": 5})
    con.close()
    assert readers.adopt_single_file(layout)
    with duckdb.connect(str(layout.working)) as working:
        assert versions.current_version(working) == 2
        readers.publish(working, layout, now=NOW)
    assert not readers.is_single_file_warehouse(layout.published)
    assert not readers.adopt_single_file(layout)


def test_an_erasure_before_any_version_removes_the_old_file_that_holds_the_person(layout):
    """A warehouse from before the working database whose runs never published (a blocking
    check failed): an erasure right after its copy said "erased", and the old file at the
    analysts' path still held the person. It has no version to show: it goes."""
    con = duckdb.connect(str(layout.published))
    con.execute("CREATE SCHEMA work")
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.customers AS SELECT 'c1' AS customer_id")
    con.close()
    assert readers.adopt_single_file(layout)
    with duckdb.connect(str(layout.working)) as working:
        working.execute("DELETE FROM staging.customers")
        assert readers.publish(working, layout, now=NOW) == readers.Published()
        assert layout.published.exists()  # no erasure: the old file stays for its readers
        assert readers.publish(working, layout, erased=True, now=NOW) == readers.Published()
    assert not layout.published.exists()


def test_a_new_working_database_never_takes_another_ones_history_files(working, layout):
    two_versions(working, layout)
    working.close()
    os.remove(layout.working)
    con = duckdb.connect(str(layout.working))
    try:
        publish_version(con, "2025-05-31", {"z": "Loyal"}, {"z": 3})
        readers.publish(con, layout, now=NOW)
    finally:
        con.close()
    assert read(layout.published, "SELECT customer_id FROM history.customer_rfm") == [("z",)]
    assert not layout.history_file("customer_rfm", 2).exists()


def test_a_moved_warehouse_is_published_again_and_reads_its_own_files(working, layout, tmp_path):
    """The published file's views read the versions' Parquet files by absolute path. A warehouse
    folder moved elsewhere kept a file whose views read the old folder (gone: every query
    failed), and with nothing new the publish found its state unchanged and kept it."""
    two_versions(working, layout)
    working.close()
    moved_folder = tmp_path / "moved"
    layout.published.parent.rename(moved_folder)
    moved = readers.Layout(
        published=moved_folder / layout.published.name,
        working=moved_folder / layout.working.name,
    )
    con = duckdb.connect(str(moved.working))
    try:
        assert "built where the warehouse was before" in readers.behind(con, moved)
        assert readers.publish(con, moved, now=NOW).built
        assert readers.behind(con, moved) is None
        assert not readers.publish(con, moved, now=NOW).built  # then up to date
        moved.published.unlink()
        assert readers.behind(con, moved) == f"{moved.published} did not exist"
        assert readers.publish(con, moved, now=NOW).built
    finally:
        con.close()
    assert read(moved.published, "SELECT count(*) FROM history.customer_rfm") == [(4,)]
    views = read(moved.published, "SELECT sql FROM duckdb_views() WHERE schema_name = 'history'")
    assert views and all(str(moved_folder) in sql for (sql,) in views)


def test_a_history_file_another_warehouse_wrote_under_the_same_name_is_written_again(
    working, layout, tmp_path
):
    """A working database restored over a warehouse started anew found the new warehouse's
    `snapshot_1.parquet` files in place and kept them: analysts read another as-of's rows as
    version 1 (a review). Each file says in its metadata which warehouse and version wrote it."""
    two_versions(working, layout)
    ours = read(layout.published, "SELECT * FROM history.customer_rfm ORDER BY ALL")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = readers.Layout(
        published=other_dir / "engagement.duckdb", working=other_dir / "w.duckdb"
    )
    con = duckdb.connect(str(other.working))
    try:
        publish_version(con, "2024-06-30", {"x": "Champions", "y": "Lost", "z": "Lost"}, {"x": 9})
        readers.publish(con, other, now=NOW)
    finally:
        con.close()
    for mart_dir in other.history_dir.iterdir():
        shutil.copy(mart_dir / "snapshot_1.parquet", layout.history_dir / mart_dir.name)
    current = layout.history_dir / "customer_rfm" / "snapshot_2.parquet"  # marts.customer_rfm
    shutil.copy(other.history_dir / "customer_rfm" / "snapshot_1.parquet", current)
    # The published file built before (or a copy of it kept elsewhere) read them as its own
    # version 1, with no error (a review): each of its views and macros now says so.
    for query in (
        "SELECT * FROM history.customer_rfm",
        "SELECT * FROM marts.customer_rfm_at(1)",
        "SELECT * FROM marts.customer_rfm",
    ):
        with pytest.raises(duckdb.InvalidInputException, match="another warehouse's at the same"):
            read(layout.published, query)
    said = readers.behind(working, layout)
    assert said is not None and "written by another warehouse or for another version" in said
    assert readers.publish(working, layout, now=NOW).built
    assert readers.behind(working, layout) is None
    assert read(layout.published, "SELECT * FROM history.customer_rfm ORDER BY ALL") == ours


def test_a_restored_working_database_never_serves_the_abandoned_versions_files(layout, tmp_path):
    """A backup of the working database restored: its next version took a number the
    abandoned timeline had used, and the published file kept serving that timeline's
    `snapshot_2.parquet` (the same warehouse, the same number) for good (a backup review).
    Each file says when its version was published, too."""
    con = duckdb.connect(str(layout.working))
    publish_version(con, "2025-01-31", {"a": "Champions", "b": "At Risk"}, {"a": 20, "b": 1})
    readers.publish(con, layout, now=NOW)
    con.close()
    backup = tmp_path / "backup.duckdb"
    shutil.copy(layout.working, backup)
    con = duckdb.connect(str(layout.working))
    publish_version(con, "2025-02-28", {"a": "Lost", "b": "Lost"}, {"a": 1, "b": 1})  # abandoned
    readers.publish(con, layout, now=NOW)
    con.close()

    shutil.copy(backup, layout.working)  # the restore; the published file goes, as advised
    layout.published.unlink()
    con = duckdb.connect(str(layout.working))
    try:
        publish_version(con, "2025-02-28", {"a": "At Risk", "b": "Champions"}, {"a": 5, "b": 9})
        readers.publish(con, layout, now=NOW)
        assert readers.behind(con, layout) is None
    finally:
        con.close()
    assert read(layout.published, "SELECT * FROM marts.customer_rfm ORDER BY ALL") == [
        ("a", "At Risk"),
        ("b", "Champions"),
    ]
    said = pq.read_metadata(layout.history_file("customer_rfm", 2)).metadata
    assert said[b"engagement_box_snapshot"] == b"2" and said[b"engagement_box_published_at"]


def publish_dated(con, as_of: str, segments: dict[str, str]) -> None:
    """A version of `work.customer_rfm` whose rows hold their as-of, as the pipeline's do."""
    frame = pl.DataFrame({"customer_id": list(segments), "segment": list(segments.values())})
    frame = frame.with_columns(pl.lit(as_of).str.to_date().alias("as_of"))
    write_frame(con, "work", "customer_rfm", frame)
    versions.publish(
        con, ["customer_rfm"], run_id="r", partition_key=None, as_of=as_of,
        settings={"as_of": as_of, "data": repr(sorted(segments.items()))},
    )  # fmt: skip


def test_a_backup_of_a_release_whose_files_recorded_no_publish_serves_no_abandoned_file(
    layout, tmp_path
):
    """An upgrade review: a backup of the release before files recorded their publish,
    restored after a later version 2 was published. The restored database's own version 2
    (another as-of) kept the abandoned timeline's file, which carries no publish to compare:
    `marts.customer` said one as-of, `marts.snapshots` another, for good. A file whose rows hold
    another as-of than its version's is another's, stamped or not."""
    con = duckdb.connect(str(layout.working))
    publish_dated(con, "2025-01-31", {"a": "Champions", "b": "At Risk"})
    readers.publish(con, layout, now=NOW)
    con.close()
    backup = tmp_path / "backup.duckdb"
    shutil.copy(layout.working, backup)
    con = duckdb.connect(str(layout.working))
    publish_dated(con, "2025-02-28", {"a": "Lost", "b": "Lost"})  # abandoned
    readers.publish(con, layout, now=NOW)
    con.close()
    abandoned = layout.history_file("customer_rfm", 2)
    table = pq.read_table(abandoned)  # as the earlier release wrote it: no publish recorded
    said = {k: v for k, v in table.schema.metadata.items() if k != b"engagement_box_published_at"}
    pq.write_table(table.replace_schema_metadata(said), abandoned)

    shutil.copy(backup, layout.working)  # the restore, the published file kept
    con = duckdb.connect(str(layout.working))
    try:
        publish_dated(con, "2025-03-31", {"a": "At Risk", "b": "Champions"})
        readers.publish(con, layout, now=NOW)
        assert readers.behind(con, layout) is None
    finally:
        con.close()
    assert read(layout.published, "SELECT * FROM marts.customer_rfm ORDER BY ALL") == [
        ("a", "At Risk", date(2025, 3, 31)),
        ("b", "Champions", date(2025, 3, 31)),
    ]


def test_a_warehouse_under_a_folder_with_a_quote_publishes_and_compacts(tmp_path):
    """A quote in the warehouse's path (`it's`) was refused at the publish, after every step of
    every run, and made an erasure end in a traceback (a review): it is quoted instead."""
    published = tmp_path / 'it\'s "q"' / "eng'x.duckdb"
    published.parent.mkdir()
    quoted = readers.Layout(published=published, working=readers.default_working(published))
    con = duckdb.connect(str(quoted.working))
    try:
        two_versions(con, quoted)
        assert readers.behind(con, quoted) is None
    finally:
        con.close()
    assert read(published, "SELECT count(*) FROM history.customer_rfm") == [(4,)]
    assert read(published, "SELECT count(*) FROM marts.customer_rfm_at(1)") == [(2,)]
    assert erasure.compact(quoted.working) == quoted.working.resolve()


def test_another_working_database_that_still_exists_never_replaces_the_published_file(
    working, layout, tmp_path
):
    """A stray ENGAGEMENT_WORKING_DB published a new warehouse's file over the analysts' one
    and deleted the retained versions' files of the working database that built it (a
    review). A copy of the whole warehouse (the same id), or a working database started anew
    where the old one is gone, still publishes."""
    two_versions(working, layout)
    history = sorted(p.name for p in (layout.history_dir / "customer_rfm").iterdir())
    stray = readers.Layout(published=layout.published, working=tmp_path / "other.duckdb")
    other = duckdb.connect(str(stray.working))
    try:
        publish_version(other, "2025-03-31", {"c": "Champions"}, {"c": 3})
        with pytest.raises(readers.PublishError, match=r"which still exists, and this run's is"):
            readers.publish(other, stray, now=NOW)
    finally:
        other.close()
    assert readers.foreign_working_problem_before_run(stray) is not None  # the CLI's question
    assert read(layout.published, "SELECT count(*) FROM marts.snapshots") == [(2,)]
    assert sorted(p.name for p in (layout.history_dir / "customer_rfm").iterdir()) == history
    assert readers.foreign_working_problem_before_run(layout) is None  # its own

    # The whole warehouse copied elsewhere: its working database keeps the id.
    working.execute("CHECKPOINT")
    copy_dir = tmp_path / "copy"
    shutil.copytree(layout.published.parent, copy_dir)
    copied = readers.Layout(
        published=copy_dir / layout.published.name, working=copy_dir / layout.working.name
    )
    assert readers.foreign_working_problem_before_run(copied) is None
    # ... and started over there (its working database deleted): its own warehouse, whose
    # file names warehouse A's working database, which still exists (a re-review).
    copied.working.unlink()
    assert readers.foreign_working_problem_before_run(copied) is None

    # The old working database gone while the file lists its versions: a run would start a new
    # warehouse over them, deleting them without a word (a review); refused, saying how to
    # restore it or start over. Once the file and its history are deleted, the new one publishes.
    stray.working.rename(tmp_path / "kept.duckdb")
    working.close()
    layout.working.unlink()
    fresh = readers.Layout(published=layout.published, working=tmp_path / "kept.duckdb")
    said = readers.foreign_working_problem_before_run(fresh)
    assert said == (
        f"{layout.published} holds 2 version(s) built from the working database "
        f"{layout.working.absolute()}, which is missing: a run would start a new warehouse and "
        f"replace them. Restore {layout.working.absolute()} (and {layout.working.name}"
        ".erasures.json beside it, the erasure register) from a backup; or set "
        "ENGAGEMENT_WAREHOUSE to another file to start a new warehouse there (this one stays "
        f"readable); or, to start over here and lose those versions, delete {layout.published} "
        f"and {layout.history_dir} first"
    )
    assert readers.foreign_working_problem_before_run(layout) == said  # a new one at its path
    other = duckdb.connect(str(tmp_path / "kept.duckdb"))
    try:
        with pytest.raises(readers.PublishError, match="which is missing"):
            readers.publish(other, fresh, now=NOW)
        assert read(layout.published, "SELECT count(*) FROM marts.snapshots") == [(2,)]
        layout.published.unlink()
        shutil.rmtree(layout.history_dir)
        assert readers.publish(other, fresh, now=NOW).built
    finally:
        other.close()
    assert read(layout.published, "SELECT count(*) FROM marts.snapshots") == [(1,)]


def test_a_published_file_from_before_its_origin_was_recorded_is_still_guarded(
    working, layout, tmp_path
):
    """A file published before `marts.published_from` (or with its first two columns only)
    left the guard off: a stray working database replaced it and an erase reported success (a
    re-review). Such a file is taken as built from the working database next to it; a damaged
    one of those holds a new working database back too (it would delete the versions' files,
    the only copy left, a review); deleted, the warehouse starts over."""
    two_versions(working, layout)
    working.close()
    stray = readers.Layout(published=layout.published, working=tmp_path / "stray.duckdb")
    with duckdb.connect(str(layout.published)) as con:
        con.execute("ALTER TABLE marts.published_from DROP COLUMN published_file")
    assert "which still exists" in readers.foreign_working_problem_before_run(stray)
    with duckdb.connect(str(layout.published)) as con:
        con.execute("DROP TABLE marts.published_from")
    assert "which still exists" in readers.foreign_working_problem_before_run(stray)
    with layout.working.open("r+b") as damaged:  # the working database it names, damaged
        damaged.seek(8)
        damaged.write(b"\xff" * 512)
    said = readers.foreign_working_problem_before_run(stray)
    assert f"the working database {layout.working}, which is damaged" in said, said
    assert "set ENGAGEMENT_WAREHOUSE to another file to start a new warehouse there" in said
    layout.working.unlink()
    assert readers.foreign_working_problem_before_run(stray) is None


def test_a_stray_file_at_the_default_path_does_not_hold_back_the_warehouse_that_published(
    tmp_path,
):
    """ENGAGEMENT_WORKING_DB set on purpose, a file from before the origin was recorded, and an
    empty DuckDB file at the default working path (a trial's): run, erase and retain were
    refused, told to switch to the empty file (a re-review)."""
    published = tmp_path / "w" / "engagement.duckdb"
    published.parent.mkdir()
    layout = readers.Layout(published=published, working=tmp_path / "custom" / "pipeline.duckdb")
    layout.working.parent.mkdir()
    con = duckdb.connect(str(layout.working))
    publish_version(con, "2025-01-31", {"a": "Champions"}, {"a": 20})
    readers.publish(con, layout, now=NOW)
    con.close()
    with duckdb.connect(str(published)) as file:
        file.execute("DROP TABLE marts.published_from")
    duckdb.connect(str(readers.default_working(published))).close()  # empty, never published
    assert readers.foreign_working_problem_before_run(layout) is None


def test_a_session_opened_before_a_version_file_was_deleted_reads_the_others(working, layout):
    """A session held open while retention expired version 1 and its file went (after the
    grace, or at an erasure): it could read no version at all, every `history.*` and `_at`
    query failing on that one file (a review). `_at` reads the versions whose files are there,
    and the deleted one says so; a copy a file manager made beside them is not read.
    `history.*` says which versions were deleted: it left them out, while the session's
    `marts.snapshots` still listed them as retained (a later review)."""
    two_versions(working, layout)
    publish_version(working, "2025-03-31", {"a": "Champions"}, {"a": 30})
    readers.publish(working, layout, now=NOW)
    reader = duckdb.connect(str(layout.published), read_only=True)
    try:
        versions.apply_retention(working, keep_versions=2, keep_days=10_000, now=NOW)
        readers.publish(working, layout, now=NOW + readers.EXPIRED_FILES_GRACE)
        assert not layout.history_file("customer_rfm", 1).exists()
        kept = layout.history_file("customer_rfm", 2)
        shutil.copy(kept, kept.with_name("snapshot_2 (copy).parquet"))

        def count(sql: str) -> int:
            return reader.execute(sql).fetchone()[0]

        assert count("SELECT count(*) FROM marts.customer_rfm_at(2)") == 2
        assert count("SELECT count(*) FROM marts.customer_rfm_at(3)") == 1
        with pytest.raises(duckdb.InvalidInputException) as refused:
            count("SELECT count(*) FROM history.customer_rfm WHERE snapshot_id IN (1, 2)")
        assert "version(s) 1: close every connection to the file in this process" in str(
            refused.value
        )
        with pytest.raises(duckdb.InvalidInputException) as refused:
            reader.execute("SELECT * FROM marts.customer_rfm_at(1)").fetchall()
        assert "version 1 was deleted after this session opened the file" in str(refused.value)
        assert "close every connection to the file in this process" in str(refused.value)
    finally:
        reader.close()
    assert sorted(
        read(layout.published, "SELECT DISTINCT snapshot_id FROM history.customer_rfm")
    ) == [(2,), (3,)]
    # a half-written copy of another name there: the pattern would open it and fail every query
    # and the next build (a re-review); the folder is then read by its list of files
    kept.with_name("snapshot_2 (copy).parquet").write_bytes(kept.read_bytes()[:40])
    publish_version(working, "2025-04-30", {"a": "Loyal"}, {"a": 40})
    assert readers.publish(working, layout, now=NOW + readers.EXPIRED_FILES_GRACE).built
    assert sorted(
        read(layout.published, "SELECT snapshot_id, count(*) FROM history.customer_rfm GROUP BY 1")
    ) == [(2, 2), (3, 1), (4, 1)]
    assert read(layout.published, "SELECT count(*) FROM marts.customer_rfm_at(2)") == [(2,)]


def test_a_copy_appearing_in_a_history_folder_after_a_build_gets_the_file_built_again(
    working, layout
):
    """A half-written copy put in a history folder after the published file was built failed
    every query of that mart's history, and every run said "nothing to do" until the next
    version (a re-review): the next publish builds the file again, read by its list of files,
    once; removing the copy builds it again too."""
    two_versions(working, layout)
    kept = layout.history_file("customer_rfm", 1)
    copy = kept.with_name("snapshot_1 (copy).parquet")
    copy.write_bytes(kept.read_bytes()[:40])
    with pytest.raises(duckdb.Error):  # the file built before the copy reads it by pattern
        read(layout.published, "SELECT count(*) FROM history.customer_rfm")
    assert readers.behind(working, layout) is not None
    assert readers.publish(working, layout, now=NOW).built
    assert read(layout.published, "SELECT count(*) FROM marts.customer_rfm_at(1)") == [(2,)]
    assert not readers.publish(working, layout, now=NOW).built  # once, not at every run
    copy.unlink()
    assert readers.publish(working, layout, now=NOW).built
    assert read(layout.published, "SELECT count(*) FROM history.customer_rfm") == [(4,)]


def test_time_travel_by_a_date_or_a_version_that_no_longer_stands_says_what_to_give(
    working, layout
):
    """`marts.<mart>_at(DATE '...')` failed with DuckDB's words about template types, and the
    NULL a picking query finds when the version of that as-of no longer stands for it said no
    version has that as-of (a review): each says what to give instead."""
    two_versions(working, layout)
    with duckdb.connect(str(layout.published), read_only=True) as con:
        for given in ("DATE '2025-01-31'", "'2025-01-31'"):
            with pytest.raises(duckdb.InvalidInputException) as refused:
                con.execute(f"SELECT * FROM marts.customer_rfm_at({given})").fetchall()
            said = str(refused.value)
            assert "takes a version (a snapshot_id)" in said and "stands_for_as_of" in said, said
        with pytest.raises(duckdb.InvalidInputException, match="no longer stands for it"):
            con.execute("SELECT * FROM marts.customer_rfm_at(NULL)").fetchall()
        huge = "18446744073709551617"  # no BIGINT: it returned no rows, as a version without any
        with pytest.raises(duckdb.InvalidInputException, match=f"version {huge} is not a retained"):
            con.execute(f"SELECT * FROM marts.customer_rfm_at({huge})").fetchall()
        assert con.execute("SELECT count(*) FROM marts.customer_rfm_at(?)", [2]).fetchone() == (2,)


def test_a_working_database_restored_from_an_older_copy_does_not_drop_later_versions(
    working, layout, tmp_path
):
    """The working database restored from a copy taken before version 2 (its damage message
    says to restore one): the next run said "published nothing", rebuilt the file without
    version 2 and deleted its history files (a re-review). Refused, naming the versions; with
    the published file deleted, as the message says, it goes on from the copy."""
    publish_version(working, "2025-01-31", {"a": "Champions", "b": "At Risk"}, {"a": 20, "b": 1})
    readers.publish(working, layout, now=NOW)
    working.execute("CHECKPOINT")
    backup = tmp_path / "backup.duckdb"
    shutil.copy(layout.working, backup)
    publish_version(working, "2025-02-28", {"a": "At Risk", "b": "At Risk"}, {"a": 5, "b": 1})
    readers.publish(working, layout, now=NOW)
    working.close()
    shutil.copy(backup, layout.working)  # restored
    history = sorted(p.name for p in (layout.history_dir / "customer_rfm").iterdir())
    said = readers.foreign_working_problem_before_run(layout)
    assert said.startswith(
        f"{layout.published} holds version(s) 2 that the working database {layout.working} has "
        "no record of (restored from a copy older than them?)"
    ), said
    restored = duckdb.connect(str(layout.working))
    try:
        with pytest.raises(readers.PublishError, match=r"holds version\(s\) 2 that"):
            readers.publish(restored, layout, erased=True, now=NOW)
        assert read(layout.published, "SELECT count(*) FROM marts.snapshots") == [(2,)]
        assert sorted(p.name for p in (layout.history_dir / "customer_rfm").iterdir()) == history
        layout.published.unlink()  # the user goes on from the copy
        assert readers.foreign_working_problem_before_run(layout) is None
        assert readers.publish(restored, layout, now=NOW).built
    finally:
        restored.close()
    assert read(layout.published, "SELECT snapshot_id FROM marts.snapshots") == [(1,)]


def test_a_history_files_as_of_is_read_from_every_row_group(tmp_path):
    """`_rows_as_of` from the statistics of each row group: the least of their minima and the
    greatest of their maxima (a file of two as-ofs is another version's)."""
    import pyarrow as pa

    path = tmp_path / "two.parquet"
    table = pa.table({"as_of": [date(2025, 1, 31), date(2025, 2, 28)], "n": [1, 2]})
    pq.write_table(table, path, row_group_size=1)
    metadata = pq.read_metadata(path)
    assert metadata.num_row_groups == 2
    assert readers._rows_as_of(metadata) == (date(2025, 1, 31), date(2025, 2, 28))
    pq.write_table(pa.table({"n": [1]}), tmp_path / "none.parquet")
    assert readers._rows_as_of(pq.read_metadata(tmp_path / "none.parquet")) is None
