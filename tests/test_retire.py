"""Retiring one bad version by hand (`engagement-box retire`, `versions.retire_version`).

The on-call story: half of a new orders file was staged, the scheduled run published a version
from it with an earlier as-of (capped at the last completed order it saw), and the next run,
with the whole file, a correct one. The half-file version stayed in `history.*` and in the
migration chain. Retiring it drops its rows like retention does, keeps its log row with when and
why, and pairs its neighbours in `marts.segment_migration`. Every date is fixed: no test depends
on today or the wall clock (but the one that waits for a held run lock).
"""

import json
import subprocess
import sys
from datetime import date, datetime

import duckdb
import pytest

from engagement_box import cli
from engagement_box.governance import erasure, readers, versions
from tests.test_cli import environment, main_cli
from tests.test_retention_work import as_ofs, publish, write_as_of
from tests.test_versions import (
    MONTHS,
    assert_migration_is_every_consecutive_pair,
    assert_one_current,
    publish_version,
    rows,
)

NOW = datetime(2026, 8, 2, 9, 30)
REASON = "half of orders_2026-07.csv was staged"
# The half file: March's orders up to the 15th, then the whole month.
HALF = ({"a": "Champions", "b": "Lost", "c": "At Risk"}, {"a": 50, "b": 0, "c": 2})


def half_file_story(con) -> None:
    """Versions 1 (Jan), 2 (Feb), 3 (the half file, as of Mar 15) and 4 (the whole file, as of
    Mar 31, current), all in the chain."""
    for as_of in ("2025-01-31", "2025-02-28"):
        publish_version(con, as_of, *MONTHS[as_of])
    publish_version(con, "2025-03-15", *HALF, partition_key="2025-03-01")
    publish_version(con, "2025-03-31", *MONTHS["2025-03-31"], partition_key="2025-03-01")
    assert versions.migration_chain(con) == [1, 2, 3, 4]


def log(con) -> list[tuple]:
    return rows(con, "SELECT * FROM marts.snapshot_log ORDER BY snapshot_id")


def test_retiring_the_half_file_version_pairs_its_neighbours_and_keeps_an_audit_row(warehouse):
    half_file_story(warehouse)
    assert_migration_is_every_consecutive_pair(warehouse)

    done = versions.retire_version(warehouse, 3, now=NOW, reason=REASON)

    assert (done.snapshot_id, done.as_of, done.rows_deleted) == (3, date(2025, 3, 15), 6)
    assert (done.pairs_removed, done.pairs_added) == ([(2, 3), (3, 4)], [(2, 4)])
    assert done.migration_rows > 0
    assert (done.was_current, done.current, done.current_as_of) == (False, 4, date(2025, 3, 31))
    # Every pair left is the self-join of history along the chain of the versions left.
    assert assert_migration_is_every_consecutive_pair(warehouse) == [(1, 2), (2, 4)]
    assert rows(warehouse, "SELECT DISTINCT snapshot_id FROM history.customer_rfm ORDER BY 1") == [
        (1,),
        (2,),
        (4,),
    ]
    assert rows(
        warehouse, "SELECT count(*) FROM history.engagement_value WHERE snapshot_id = 3"
    ) == [(0,)]
    # The audit trail: the row stays, expired and retired at the same time, with the reason.
    assert rows(
        warehouse,
        "SELECT expired_at, retired_at, retired_reason, is_current, stands_for_as_of "
        "FROM marts.snapshots WHERE snapshot_id = 3",
    ) == [(NOW, NOW, REASON, False, False)]
    assert rows(warehouse, "SELECT count(*) FROM marts.snapshots WHERE retired_at IS NULL") == [
        (3,)
    ]
    # Time travel refuses it as it refuses an expired version; the current one is untouched.
    with pytest.raises(duckdb.InvalidInputException, match="version 3 is not a retained version"):
        rows(warehouse, "SELECT * FROM marts.customer_rfm_at(3)")
    assert_one_current(warehouse, 4)


def test_retiring_a_linked_version_trims_its_work_rows(warehouse):
    """A version published from one as-of's work rows links them: once retired, that as-of
    leaves every work table (with its record), as after retention."""
    d1, d2, d3 = date(2025, 9, 30), date(2025, 10, 15), date(2025, 10, 31)
    for n, as_of in enumerate((d1, d2, d3), start=2):
        write_as_of(warehouse, as_of, n)
        publish(warehouse, as_of)

    done = versions.retire_version(warehouse, 2, now=NOW)

    assert done.as_ofs_trimmed == [d2] and done.work_rows_deleted == 2 * 3  # two tables
    assert as_ofs(warehouse, "customer_rfm") == as_ofs(warehouse, "customer_summary") == [d1, d3]
    assert rows(warehouse, "SELECT retired_reason FROM marts.snapshots WHERE snapshot_id = 2") == [
        (None,)
    ]


def test_the_current_version_is_refused_unless_asked_then_the_one_before_is_current(warehouse):
    half_file_story(warehouse)
    before = log(warehouse)

    with pytest.raises(versions.RetireRefused) as refused:
        versions.retire_version(warehouse, 4, now=NOW)
    assert str(refused.value) == (
        "version 4 (as of 2025-03-31) is the current version (marts.*, the analysts' file and "
        "the audience files hold it): give --current to retire it and make version 3 (as of "
        "2025-03-15) current, or publish a correct version first (engagement-box run), which "
        "then becomes current"
    )
    assert log(warehouse) == before  # nothing written
    assert_one_current(warehouse, 4)

    done = versions.retire_version(warehouse, 4, now=NOW, current_too=True)

    assert (done.was_current, done.current, done.current_as_of) == (True, 3, date(2025, 3, 15))
    assert_one_current(warehouse, 3)  # marts.* holds version 3's rows
    assert rows(warehouse, "SELECT customer_id, segment FROM marts.customer_rfm ORDER BY 1") == (
        sorted(HALF[0].items())
    )
    assert assert_migration_is_every_consecutive_pair(warehouse) == [(1, 2), (2, 3)]
    assert done.pairs_removed == [(3, 4)] and done.pairs_added == []
    # The next publish of a later as-of is current again, as always.
    assert publish_version(warehouse, "2025-04-30", *MONTHS["2025-04-30"]).current
    assert_one_current(warehouse, 5)


def test_retiring_the_version_that_replaced_another_brings_that_one_back_as_current(warehouse):
    """Current after retiring the current one: the version a run would have made current had
    the retired one never been published. A version it replaced (the data had moved back
    under it) is in the chain again, and current."""
    july = "2026-07-01"
    publish_version(warehouse, "2026-06-30", {"a": "Loyal"}, {"a": 5}, partition_key="2026-06-01")
    publish_version(warehouse, "2026-07-03", {"a": "Champions"}, {"a": 20}, partition_key=july)
    publish_version(warehouse, "2026-06-30", {"a": "Lost"}, {"a": 4}, partition_key=july)
    assert versions.migration_chain(warehouse) == [3]

    done = versions.retire_version(warehouse, 3, now=NOW, current_too=True)

    assert done.current == 2
    assert_one_current(warehouse, 2)
    assert assert_migration_is_every_consecutive_pair(warehouse) == [(1, 2)]


@pytest.mark.parametrize(
    ("version", "said"),
    [
        (9, "version 9 was never published in this warehouse; check the id (marts.snapshots "
            "lists the versions; those retained have no expired_at)"),
        (1, "version 1 (as of 2025-01-31) expired already by the retention policy, at "
            "2026-08-01 00:00:00: its rows are gone, nothing left to retire"),
        (2, f"version 2 (as of 2025-02-28) was retired already, at 2026-08-02 09:30:00 "
            f"({REASON}): nothing left to retire"),
    ],
)  # fmt: skip
def test_an_unknown_expired_or_retired_version_is_refused_and_nothing_changes(
    warehouse, version, said
):
    half_file_story(warehouse)
    versions.apply_retention(warehouse, keep_versions=3, keep_days=10_000, now=datetime(2026, 8, 1))
    versions.retire_version(warehouse, 2, now=NOW, reason=REASON)
    before, pairs = log(warehouse), assert_migration_is_every_consecutive_pair(warehouse)

    with pytest.raises(versions.RetireRefused) as refused:
        versions.retire_version(warehouse, version, now=datetime(2026, 8, 3))

    assert str(refused.value) == said
    assert log(warehouse) == before
    assert assert_migration_is_every_consecutive_pair(warehouse) == pairs == [(3, 4)]


def test_the_only_retained_version_is_refused_even_with_current_too(warehouse):
    publish_version(warehouse, "2025-01-31", *MONTHS["2025-01-31"])
    with pytest.raises(versions.RetireRefused, match="is the only retained version"):
        versions.retire_version(warehouse, 1, now=NOW, current_too=True)
    assert_one_current(warehouse, 1)
    assert rows(warehouse, "SELECT count(*) FROM marts.snapshots WHERE expired_at IS NULL") == [
        (1,)
    ]


def test_a_snapshot_log_from_before_retirement_gets_the_columns(warehouse):
    """A warehouse an earlier release built: its log and view lack the two columns; the next
    check of the version tables adds them (NULL for every version), then a version retires."""
    publish_version(warehouse, "2025-01-31", *MONTHS["2025-01-31"])
    publish_version(warehouse, "2025-02-28", *MONTHS["2025-02-28"])
    warehouse.execute("DROP VIEW marts.snapshots")
    for column in ("retired_at", "retired_reason"):
        warehouse.execute(f"ALTER TABLE marts.snapshot_log DROP COLUMN {column}")
    warehouse.execute(
        "CREATE VIEW marts.snapshots AS SELECT l.*, l.snapshot_id = 2 AS is_current, "
        "true AS stands_for_as_of FROM marts.snapshot_log AS l"
    )

    versions.ensure_version_tables(warehouse)
    assert rows(warehouse, "SELECT retired_at, retired_reason FROM marts.snapshots") == [
        (None, None),
        (None, None),
    ]
    described = dict(
        rows(
            warehouse,
            "SELECT column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'marts' AND table_name = 'snapshots'",
        )
    )
    assert described["retired_reason"].startswith("Why it was retired")
    versions.retire_version(warehouse, 1, now=NOW, reason=REASON)
    assert rows(warehouse, "SELECT retired_reason FROM marts.snapshot_log WHERE retired_at IS NOT NULL") == [(REASON,)]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The analysts' file and the command


@pytest.fixture
def layout(tmp_path) -> readers.Layout:
    """A warehouse of the half-file story, published for readers (as every run leaves it)."""
    published = tmp_path / "warehouse" / "w.duckdb"
    published.parent.mkdir()
    layout = readers.Layout(published, readers.default_working(published))
    con = duckdb.connect(str(layout.working))
    try:
        half_file_story(con)
        readers.publish(con, layout, now=NOW)
    finally:
        con.close()
    return layout


def read(path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def retire_cli(tmp_path, layout, *argv: str, **env: str) -> tuple[int, str, str]:
    return main_cli(
        {**environment(tmp_path, tmp_path / "exports"), "ENGAGEMENT_WAREHOUSE": str(layout.published), **env},
        "retire", *argv,
    )  # fmt: skip


def test_retire_says_what_it_did_and_the_analysts_file_no_longer_shows_it(tmp_path, layout):
    files = sorted(layout.history_dir.glob("*/snapshot_3.parquet"))
    assert len(files) == 2  # customer_rfm, engagement_value
    reader = duckdb.connect(str(layout.published), read_only=True)  # opened before
    try:
        code, out, err = retire_cli(tmp_path, layout, "--version", "3", "--reason", REASON)
        assert (code, err) == (0, ""), err
        assert out.splitlines() == [
            f"retired version 3 (as of 2025-03-15): {REASON}",
            "history rows deleted: 6; version files deleted: 2; analysts' file rebuilt without it",
            "migration pairs removed: 2 -> 3, 3 -> 4; computed: 2 -> 4 (6 rows)",
            "current version: 4 (as of 2025-03-31), unchanged",
            "marts.snapshots keeps version 3's row (retired_at, retired_reason)",
        ]
        # A session opened before is told the version was deleted and to reconnect.
        with pytest.raises(duckdb.InvalidInputException, match="version 3 was deleted after"):
            reader.execute("SELECT * FROM marts.customer_rfm_at(3)").fetchall()
    finally:
        reader.close()
    assert not any(path.exists() for path in files)
    published = layout.published
    assert read(published, "SELECT DISTINCT snapshot_id FROM history.customer_rfm ORDER BY 1") == [
        (1,),
        (2,),
        (4,),
    ]
    assert read(
        published, "SELECT DISTINCT from_snapshot, to_snapshot FROM marts.segment_migration "
        "ORDER BY ALL",
    ) == [(1, 2), (2, 4)]  # fmt: skip
    assert read(
        published, "SELECT retired_reason, is_current FROM marts.snapshots WHERE snapshot_id = 3"
    ) == [(REASON, False)]
    with pytest.raises(duckdb.InvalidInputException, match="version 3 is not a retained version"):
        read(published, "SELECT * FROM marts.customer_rfm_at(3)")
    assert read(published, "SELECT snapshot_id FROM marts.snapshots WHERE is_current") == [(4,)]

    # Again: refused in one sentence, exit 2, nothing ran.
    code, out, err = retire_cli(tmp_path, layout, "--version", "3")
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("engagement-box retire: FAILED, nothing was retired: version 3 ")
    assert line.endswith(f"({REASON}): nothing left to retire")


def test_retire_refuses_the_current_version_an_unknown_one_spark_and_no_warehouse(tmp_path, layout):
    said = "engagement-box retire: FAILED, nothing was retired: "
    for argv, env, starts in (
        (["--version", "4"], {}, "version 4 (as of 2025-03-31) is the current version"),
        (["--version", "12"], {}, "version 12 was never published in this warehouse"),
        (["--version", "3"], {"ENGAGEMENT_ENGINE": "spark"}, "engagement-box retire retires a "
         "version of the DuckDB warehouse, and ENGAGEMENT_ENGINE is spark"),
        (["--version", "3"], {"ENGAGEMENT_WAREHOUSE": str(tmp_path / "typo" / "w.duckdb")},
         f"no warehouse at {tmp_path / 'typo' / 'w.duckdb'}"),
    ):  # fmt: skip
        code, out, err = retire_cli(tmp_path, layout, *argv, **env)
        assert code == 2 and "Traceback" not in err, err
        (line,) = err.splitlines()
        assert line.startswith(said + starts), line
    assert not (tmp_path / "typo").exists()
    assert read(
        layout.published, "SELECT count(*) FROM marts.snapshots WHERE expired_at IS NULL"
    ) == [(4,)]
    with pytest.raises(SystemExit):  # argparse: --version is required, and a number
        cli.main(["retire", "--version", "three"])


def test_retire_waits_for_the_run_that_holds_the_run_lock(tmp_path, layout):
    """A run holding the warehouse's run lock goes first: retire waits for it, as `run` and
    `retain` do, then retires."""
    lock = f"{layout.published}.run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import fcntl, os, sys, time\n"
            f"fd = os.open({lock!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(1.5)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out, err = retire_cli(tmp_path, layout, "--version", "3")
        assert holder.poll() is not None  # it finished before retire got the lock
    finally:
        holder.kill()
        holder.wait()
    assert code == 0, err
    assert out.splitlines()[0].startswith("waiting for the run that holds the warehouse to finish")
    assert "retired version 3 (as of 2025-03-15)" in out.splitlines()


@pytest.mark.integration
def test_retiring_the_current_version_writes_the_audience_files_from_the_new_one(
    december_run, tmp_path
):
    """With --current, the version before becomes current in the working database, the
    analysts' file and the audience files (the job audience_files, recorded in Dagster)."""
    import json

    from tests.pipeline_runs import copy_run
    from tests.test_cli import MONTH, copy_environment, second_version

    copy = copy_run(december_run, tmp_path / "run")
    second_version(copy)  # version 2 of December's rows, with other settings
    env = copy_environment(tmp_path, copy)
    written_from = copy.database.parent / "audiences" / "_written_from.json"
    code, out, err = main_cli(env, "run", "--month", MONTH)  # version 3, and its audience files
    assert code == 0 and json.loads(written_from.read_text())["snapshot_id"] == 3, out + err

    code, out, err = main_cli(env, "retire", "--version", "3", "--reason", REASON)
    assert code == 2 and "give --current to retire it and make version 2" in err, err

    code, out, err = main_cli(env, "retire", "--version", "3", "--reason", REASON, "--current")
    assert code == 0, err[-3000:]
    said = out.splitlines()
    assert said[0] == f"retired version 3 (as of 2025-12-31): {REASON}"
    assert said[3].startswith("current version: 2 (as of 2025-12-31), in place of the retired")
    assert "writing the audience files from the new current version (audience_files):" in said
    assert said[-1].startswith("run ") and said[-1].endswith(" succeeded")
    assert json.loads(written_from.read_text())["snapshot_id"] == 2
    assert read(copy.database, "SELECT snapshot_id FROM marts.snapshots WHERE is_current") == [(2,)]


def test_retire_and_retain_say_the_register_keeps_the_next_run_waiting(tmp_path, layout):
    """A re-review of the restore flow: after a backup was restored beside today's register,
    the run refused (its register lists erasures the database lacks), yet `retain` said nothing
    of it and `retire --current` retired, then failed writing the new current version's
    audience files. Now --current is refused before anything, a version that is not current is
    retired with a warning, and retention (it only deletes) warns too."""
    register = erasure.register_path(layout.working)
    register.write_text(
        json.dumps({"salt_fingerprint": "f", "salt": None, "subject_hashes": ["0" * 64]}),
        encoding="utf-8",
    )
    said = f"{register} lists 1 key of erased people"

    code, out, err = retire_cli(tmp_path, layout, "--version", "4", "--current")
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"engagement-box retire: FAILED, nothing was retired: {said}"), line
    assert line.endswith("`engagement-box erase --from-register` (their keys are not printed); "
                         "then retire the current version")  # fmt: skip
    assert read(layout.published, "SELECT snapshot_id FROM marts.snapshots WHERE is_current") == [
        (4,)
    ]

    code, out, err = retire_cli(tmp_path, layout, "--version", "3")
    assert code == 0 and "retired version 3 (as of 2025-03-15)" in out.splitlines(), err
    assert err.splitlines() == [f"warning: the next run will refuse: {_lacking(register, layout)}"]

    code, out, err = main_cli(
        {**environment(tmp_path, tmp_path / "exports"),
         "ENGAGEMENT_WAREHOUSE": str(layout.published), "ENGAGEMENT_KEEP_VERSIONS": "1"},
        "retain",
    )  # fmt: skip
    assert code == 0, err
    assert "expired now" in out
    assert err.splitlines() == [f"warning: the next run will refuse: {_lacking(register, layout)}"]


def _lacking(register, layout) -> str:
    return erasure._lacking(register, str(layout.working), 1)
