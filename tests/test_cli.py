"""`engagement-box run` tells the truth: one line per step as it finishes, Dagster's full log in a
file it names, the failing step's own cause, and runs the UI can re-execute.

One real run of a small generated retailer (tmp_path warehouse, the project's own Dagster
configuration) is checked three ways in one test, since a run costs most of a minute: its console,
its re-execution from the UI, and the README's command that materializes one asset after it.
"""

import contextlib
import datetime as dt
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.publish import MARTS
from engagement_box import cli, generator, settings
from engagement_box.governance import versions
from engagement_box.governance.readers import default_working
from engagement_box.staging import ingestion
from engagement_box.staging.contracts import SOURCES
from tests.conftest import ORDER_HEADER, good_order, write_csv
from tests.pipeline_runs import PipelineRun, copy_run

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MONTH = "2025-12"
PARTITION = "2025-12-01"


def environment(root: Path, exports: Path) -> dict[str, str]:
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    return {
        "ENGAGEMENT_DATA_DIR": str(exports),
        "ENGAGEMENT_WAREHOUSE": str(root / "warehouse" / "w.duckdb"),
        "ENGAGEMENT_AUDIENCE_DIR": str(root / "audiences"),
        "DAGSTER_HOME": str(home),
    }


def copy_environment(root: Path, copy, audiences: Path | None = None, exports=None) -> dict:
    """`environment` for a copy of a run (`copy_run`): its warehouse, and its audience folder
    unless `audiences` names another; its exports unless `exports` does."""
    return {
        **environment(root, copy.exports if exports is None else exports),
        "ENGAGEMENT_WAREHOUSE": str(copy.database),
        "ENGAGEMENT_AUDIENCE_DIR": str(audiences or copy.database.parent / "audiences"),
    }


def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`engagement-box run` in this process: exit code, stdout, stderr."""
    return main_cli(env, "run", *args)


def main_cli(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    """`engagement-box <argv>` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_a_cli_run_tells_its_steps_reruns_from_the_ui_and_one_asset_reruns(tmp_path):
    root = tmp_path
    exports = root / "exports"
    generator.generate(
        exports, generator.GeneratorConfig(customers=400, seed=11, end=dt.date(2025, 12, 31))
    )
    env = environment(root, exports)
    code, out, err = run_cli(env, "--month", MONTH)
    cli_run = {"env": env, "code": code, "out": out, "err": err}
    check_console(cli_run)
    check_ui_reexecution(cli_run)
    check_readme_materialize(cli_run)
    check_nothing_computed_says_no_path(cli_run, exports)


def check_nothing_computed_says_no_path(cli_run: dict, exports: Path) -> None:
    """A run that stages no row (a header-only export) computes nothing: the standing
    version's materializations that `work__version_inputs` repeats carry what the run that
    computed them said ("cold"), which is not this run's path. The CLI said
    `work__version_inputs ... cold` and "computed in full: work__version_inputs: no earlier
    state of calibration_holdout ..." under the same Dagster home."""
    first_csv = sorted((exports / "orders").glob("*.csv"))[0]
    header = first_csv.read_text(encoding="utf-8-sig").splitlines()[0]
    (exports / "orders" / "orders_header_only.csv").write_text(header + "\n")
    code, out, err = run_cli(cli_run["env"], "--month", MONTH)
    assert code == 0, err[-3000:]
    assert "computed nothing: version 1" in out
    line = step_lines(out)["work__version_inputs"]
    assert line[1] == "ok" and line[-1] not in ("cold", "incremental", "carried"), line
    assert "computed in full" not in out


@contextlib.contextmanager
def instance_at(env: dict[str, str]):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with dg.DagsterInstance.get() as instance:
            yield instance


def step_lines(out: str) -> dict[str, list[str]]:
    """Step key -> the fields of its console line."""
    lines = out.split(cli.StepLines.HEADER.strip(), 1)[1].splitlines()[1:]
    return {
        line.split()[0]: line.split()
        for line in lines
        if line.startswith("  ") and len(line.split()) >= 3
    }


def check_console(cli_run: dict) -> None:
    """One line per step, nothing on stderr, the full log in the file named."""
    assert cli_run["code"] == 0, cli_run["err"][-3000:]
    out, err = cli_run["out"], cli_run["err"]
    assert err == ""  # Dagster's DEBUG lines are in the log file, not on the console
    run_id = re.search(r"^run:\s+(\S+)$", out, flags=re.M)[1]
    log = Path(re.search(r"^full log:\s+(\S+)$", out, flags=re.M)[1])
    # not DAGSTER_HOME/logs, Dagster's telemetry cache, which `dagster dev` uploads and empties
    assert log == Path(cli_run["env"]["DAGSTER_HOME"]) / "run_logs" / f"{run_id}.log"
    text = log.read_text()
    assert "DEBUG" in text and 'Started execution of step "staging__orders"' in text
    assert "published version 1" in text  # the assets' own log messages too

    with instance_at(cli_run["env"]) as instance:
        planned = instance.get_run_by_id(run_id).step_keys_to_execute
    lines = step_lines(out)
    assert sorted(lines) == sorted(planned)  # every step, once
    for fields in lines.values():
        assert fields[1] == "ok", fields
        assert float(fields[2]) >= 0  # seconds
        assert float(fields[3]) >= 0  # CPU seconds
    for source in SOURCES:  # each staging step: its rows and its reconciliation check
        fields = lines[f"staging__{source}"]
        assert fields[-2:] == ["1", "passed"], fields
    # The staged rows are in the pipeline's working database, not in the published file.
    working = default_working(Path(cli_run["env"]["ENGAGEMENT_WAREHOUSE"]))
    con = duckdb.connect(str(working), read_only=True)
    try:
        staged = con.execute("SELECT count(*) FROM staging.orders").fetchone()[0]
        emails = {r[0] for r in con.execute("SELECT email FROM staging.customers").fetchall()}
        every_staged = sum(
            con.execute(f"SELECT count(*) FROM staging.{source}").fetchone()[0]
            for source in SOURCES
        )
        held = con.execute("SELECT count(*) FROM staging.quarantine").fetchone()[0]
    finally:
        con.close()
    emails.discard(None)
    # The log file is outside the warehouse (erasure cannot reach it): no email gets there.
    assert emails and not [e for e in emails if e in text or e in out]
    assert lines["staging__orders"][4] == f"{staged:,}"
    assert lines["published_marts"][5:7] == ["in", str(len(MARTS))]  # rows in every mart
    # The last lines say which version the run published (the publish step's metadata).
    published, succeeded = out.rstrip().splitlines()[-2:]
    said = re.fullmatch(
        r"published version 1 \(as of 2025-12-\d\d\); this run took in (\d+) file\(s\): "
        r"([\d,]+) rows staged, ([\d,]+) quarantined \(staging.quarantine says why\)",
        published,
    )
    assert said, published  # what a cron log shows of the rows quarantined, too
    assert said[2] == f"{every_staged:,}" and said[3] == f"{held:,}" and held > 0
    assert succeeded == f"run {run_id} succeeded"


def test_a_failed_step_prints_its_own_cause_and_the_file(tmp_path):
    exports = tmp_path / "exports"
    for source in SOURCES:
        (exports / source).mkdir(parents=True)
    bad = write_csv(
        exports / "orders" / "orders_bad.csv",
        [good_order(1)],
        header=[c for c in ORDER_HEADER if c != "net_amount"],
    )
    env = environment(tmp_path, exports)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 1
    assert step_lines(out)["staging__orders"][1] == "FAILED"
    (failed,) = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert failed.startswith("FAILED staging__orders: orders/orders_bad.csv: missing required")
    assert "net_amount" in failed and "None" not in failed
    assert "Execution of run" not in failed and "Traceback" not in err
    assert "full log: " in failed
    assert re.search(r"^  \d+ steps did not run: ", out, flags=re.M)
    assert bad.exists()


def test_every_failed_step_is_said_so_one_run_shows_every_file_to_fix(tmp_path):
    """Two broken exports in two folders failed two staging steps, and the CLI said only the
    first: the user fixed it, ran again, and only then learned of the second."""
    exports = tmp_path / "exports"
    for source in SOURCES:
        (exports / source).mkdir(parents=True)
    write_csv(
        exports / "orders" / "orders_bad.csv",
        [good_order(1)],
        header=[c for c in ORDER_HEADER if c != "net_amount"],
    )
    (exports / "reviews" / "reviews.parquet").write_text("not a Parquet file")
    code, out, err = run_cli(environment(tmp_path, exports), "--month", MONTH)
    assert code == 1
    lines = step_lines(out)
    assert lines["staging__orders"][1] == lines["staging__reviews"][1] == "FAILED"
    failed = [line for line in err.splitlines() if "FAILED" in line]
    assert len(failed) == 2, err
    assert failed[0].startswith("FAILED staging__orders: orders/orders_bad.csv: missing required")
    assert failed[1].startswith("also FAILED staging__reviews: reviews/reviews.parquet: unreadable")

    # A blocking check that failed in the same run is said first; the steps still follow.
    env = environment(tmp_path, exports)
    with instance_at(env) as instance:
        run = instance.get_runs(limit=1)[0]
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
    steps = cli.StepLines(out=io.StringIO())
    steps.failed_checks.append("check fits_converged on work/model_fit failed: no fit")
    said = io.StringIO()
    with redirect_stderr(said):
        assert cli._finish(cli.Executed(run.run_id, events, False, None), steps) == 1
    lines = said.getvalue().splitlines()
    assert lines[0].startswith("FAILED check fits_converged on work/model_fit failed: no fit; ")
    assert [line.split(":")[0] for line in lines[1:]] == [
        "also FAILED staging__orders",
        "also FAILED staging__reviews",
    ]


def test_a_warning_check_that_does_not_hold_is_said_warned_not_failed():
    """A run of an earlier month on purpose: its step line said "0 passed, 1 FAILED
    (current_version_is_fresh)" above "run ... succeeded", for a check that only warns. A
    blocking check that fails still says FAILED."""
    out = io.StringIO()
    steps = cli.StepLines(out=out)
    steps.checks["published_marts"] = [("current_version_is_fresh", False, True)]
    steps.checks["work__model_fit"] = [("fits_converged", False, False), ("other", True, False)]
    steps.line("published_marts", "ok", 1.0, 1.0)
    steps.line("work__model_fit", "ok", 1.0, 1.0)
    published, fit = out.getvalue().splitlines()
    assert "0 passed, 1 warned (current_version_is_fresh)" in published
    assert "FAILED" not in published
    assert "1 passed, 1 FAILED (fits_converged)" in fit


def test_the_step_a_signal_stopped_says_stopped_not_failed():
    """Ctrl-C during a step: its line read FAILED, as if its data were at fault (a review). A
    step that fails after the run received a signal says "stopped"; one without, FAILED."""
    from types import SimpleNamespace

    def failure(step: str):
        return SimpleNamespace(event_type_value="STEP_FAILURE", step_key=step)

    out = io.StringIO()
    steps = cli.StepLines(out=out)
    steps(failure("staging__reviews"))
    steps.signals.append(signal.SIGINT)  # as the run's signal watcher does
    steps(failure("staging__orders"))
    broken, stopped = out.getvalue().splitlines()
    assert broken.split()[:2] == ["staging__reviews", "FAILED"], broken
    assert stopped.split()[:2] == ["staging__orders", "stopped"], stopped


def test_the_last_line_counts_the_rows_kept_out_for_erased_people():
    """A file with 4 rows, 3 of them a person erased before: the run said "1 rows staged, 0
    quarantined" and nothing of the other 3 (only staging.erased_rows counts them)."""
    steps = cli.StepLines(out=io.StringIO())
    steps.publish = {"snapshot_id": 2, "published_new_version": True, "as_of": "2026-06-30"}
    steps.ingested.update(
        files_ingested=1,
        rows_staged_this_run=1,
        rows_quarantined_this_run=0,
        rows_erased_this_run=3,
    )
    assert steps.publish_outcome() == (
        "published version 2 (as of 2026-06-30); this run took in 1 file(s): 1 row staged, 0 "
        "quarantined, 3 kept out as erased people's (staging.erased_rows)"
    )
    steps.ingested["rows_erased_this_run"] = 0
    assert steps.publish_outcome().endswith("1 row staged, 0 quarantined")


def test_a_warehouse_folder_in_which_no_file_can_be_made_stops_before_any_step(tmp_path):
    """A warehouse folder made read-only (or immutable) after its first run: the run lock, a
    file already there, opened; then all six staging steps failed on DuckDB's write-ahead log
    (exit 1, six errors). It is one line before any step, exit 2. (The tests run as root, whom
    permissions do not stop: a directory where the check's file would go blocks it the same.)"""
    warehouse = tmp_path / "w" / "engagement.duckdb"
    warehouse.parent.mkdir()
    (warehouse.parent / ".engagement.duckdb.write-check").mkdir()
    env = {
        "ENGAGEMENT_WAREHOUSE": str(warehouse),
        "ENGAGEMENT_AUDIENCE_DIR": str(tmp_path / "aud"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    code, out, err = main_cli(env, "run")
    assert code == 2, (out, err)
    assert err.startswith(f"FAILED before any step: the warehouse folder {warehouse.parent} "), err
    assert "cannot be written" in err and err.count("\n") == 1, err
    assert "staging__" not in out


def test_a_calibration_end_no_as_of_of_the_month_can_follow_stops_before_any_step(tmp_path):
    """`ENGAGEMENT_CALIBRATION_END=2025-12-31 engagement-box run --month 2025-12` created a run
    and refused it in the run's setup: exit 1 and 21 steps listed as not run (a re-review)."""
    env = {
        "ENGAGEMENT_CALIBRATION_END": "2025-12-31",
        "ENGAGEMENT_WAREHOUSE": str(tmp_path / "w" / "engagement.duckdb"),
        "ENGAGEMENT_AUDIENCE_DIR": str(tmp_path / "aud"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    code, out, err = main_cli(env, "run", "--month", "2025-12")
    assert code == 2, (out, err)
    assert err == (
        "FAILED before any step: ENGAGEMENT_CALIBRATION_END=2025-12-31 must be before the "
        "as-of, which for the month 2025-12 is 2025-12-31 at the latest: the holdout is the "
        "days after the calibration end\n"
    )
    assert "staging__" not in out


def test_a_run_stopped_after_its_publish_says_the_version_stands(tmp_path, monkeypatch):
    """SIGTERM while the audiences were written: "FAILED stopped by SIGTERM; the last good
    version stays current", while the run's new version was current. It says the version it
    published stands; stopped before, which version is still current (it said only
    "marts.snapshots says which", a review), read before the run: after a stop, opening the
    working database again in the process hung while the stopped step's connection was open
    (a re-review)."""
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(tmp_path / "engagement.duckdb"))
    monkeypatch.delenv("ENGAGEMENT_WORKING_DB", raising=False)
    assert cli.current_version() == (True, None)  # no working database: nothing published
    working = duckdb.connect(str(tmp_path / "engagement.working.duckdb"))
    working.execute("CREATE SCHEMA marts")
    working.execute("CREATE TABLE marts.current_version AS SELECT 7 AS snapshot_id")
    working.execute(
        "CREATE TABLE marts.snapshot_log AS SELECT 7 AS snapshot_id, DATE '2026-06-30' AS as_of"
    )
    working.close()
    assert cli.current_version() == (True, 7)

    def stopped(steps) -> str:
        said = io.StringIO()
        with redirect_stderr(said):
            code = cli._finish(cli.Executed("r1", [], False, signal.SIGTERM), steps)
        assert code == 128 + signal.SIGTERM
        return said.getvalue()

    steps = cli.StepLines(out=io.StringIO())
    steps.version_before = (True, None)
    assert stopped(steps).startswith("FAILED stopped by SIGTERM; no version is published yet")
    steps.version_before = (True, 7)
    steps.started = {"staging__orders": 0.0, "work__version_inputs": 0.5}  # moves no version
    assert stopped(steps).startswith(
        "FAILED stopped by SIGTERM; the current version is still version 7, the last one "
        "published whole"
    )
    # the publish had started: its commit may have made a new version current
    steps.started["published_marts"] = 1.0
    assert stopped(steps).startswith(
        "FAILED stopped by SIGTERM; the current version is the last one published whole "
        "(marts.snapshots says which; version 7 before this run)"
    )
    steps.version_before = (False, None)  # not read (a run holding the file)
    assert stopped(steps).startswith(
        "FAILED stopped by SIGTERM; the current version is the last one published whole "
        "(marts.snapshots says which)"
    )
    steps.publish = {"snapshot_id": 18, "published_new_version": True, "as_of": "2026-06-30"}
    said = io.StringIO()
    with redirect_stderr(said):
        cli._finish(cli.Executed("r1", [], False, signal.SIGTERM), steps)
    assert said.getvalue().startswith(
        "FAILED stopped by SIGTERM; after it published version 18, which stands; the audience "
        "files may be a version behind until the next run writes them"
    ), said.getvalue()


def test_a_published_file_that_cannot_be_built_says_the_version_is_published(
    december_run, tmp_path, monkeypatch
):
    """The disk filled while the analysts' file was built, after the version committed: the run
    said only "FAILED published_marts: IO Error: ... No space left on device", though the new
    version was current in the working database. It says so, and that the next run builds the
    file."""
    from engagement_box.governance import readers

    copy = copy_run(december_run, tmp_path / "run")
    env = {**copy_environment(tmp_path, copy), "ENGAGEMENT_CIV_BETA": "0.43"}  # a new version

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(readers, "_build", full)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 1, out
    first = err.splitlines()[0]
    assert first.startswith(
        "FAILED published_marts: version 2 is published in the working database, but the file "
        "analysts open could not be built ([Errno 28] No space left on device)"
    ), first
    assert "and run again: it builds the file and writes the audiences" in first, first


def test_a_full_disk_in_a_work_step_says_what_to_do_and_which_version_stands(
    december_run, tmp_path, monkeypatch
):
    """DuckDB's "Could not write file ...: No space left on device" was all a run said when
    the disk filled in a work step (a review): a line says to free space and run again, and
    which version stays current."""
    from engagement_box import partitioned

    copy = copy_run(december_run, tmp_path / "run")
    env = {**copy_environment(tmp_path, copy), "ENGAGEMENT_CIV_BETA": "0.43"}  # a new version

    def full(*args, **kwargs):
        raise duckdb.IOException('Could not write file "w.wal": No space left on device')

    monkeypatch.setattr(partitioned, "write_partition", full)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 1, out
    assert "No space left on device" in err.splitlines()[0]
    assert err.splitlines()[-1] == (
        "the disk is full: free space where the message says the file is, then run the month "
        "again (or re-execute from failure); the current version is still version 1, the last "
        "one published whole"
    ), err


def test_a_missing_working_database_is_refused_before_any_step_by_run_and_retain(
    december_run, tmp_path
):
    """The working database deleted while the published file lists its versions: a run started
    a new warehouse over them without a word (a review). `run` and `retain` refuse before any
    step (retain refused inside its step), and nothing is created."""
    from engagement_box.governance import readers

    copy = copy_run(december_run, tmp_path / "run")
    working = readers.default_working(copy.database)
    working.unlink()
    env = copy_environment(tmp_path, copy)
    for command in (["run", "--month", MONTH], ["retain"]):
        code, out, err = main_cli(env, *command)
        assert code == 2, out + err
        assert err.startswith(
            f"FAILED before any step: {copy.database} holds 1 version(s) built "
            f"from the working database {working}, which is missing"
        ), err
        assert "maintenance__" not in out and not working.exists()


def test_a_month_dagster_does_not_know_is_said_in_plain_words(tmp_path):
    env = environment(tmp_path, tmp_path)
    code, _, err = run_cli(env, "--month", "2019-01")
    assert code == 2
    assert "outside the as-of months" in err and "Traceback" not in err


# The UI's "Re-execute" of one selected step of the CLI's run: the step keys, the parent and root
# run and the parent's tags (its partition), as the UI sends them. One step keeps the rerun
# short; the whole plan goes through the same launch (the job origin the CLI records).
QUERY = """
mutation($params: ExecutionParams!) {
  launchRunReexecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
  }
}"""
RERUN_STEP = "work__customer_rfm"


def check_ui_reexecution(cli_run: dict) -> None:
    """The UI's re-execution of a step of the CLI's run: the same GraphQL mutation, on the
    workspace `dagster dev` loads when started as the README says (no arguments: pyproject.toml's
    [tool.dagster] block comes before workspace.yaml). It failed with "CheckError: Expected
    non-None value: None" when the CLI ran the job with `execute_in_process` (no job origin
    recorded), and with "Location pipelines.definitions does not exist in workspace" while
    workspace.yaml, which the CLI reads, named the location otherwise."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import PyProjectFileTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    assert cli_run["code"] == 0, cli_run["err"][-3000:]
    parent_id = re.search(r"^run:\s+(\S+)$", cli_run["out"], flags=re.M)[1]
    with (
        instance_at(cli_run["env"]) as instance,
        WorkspaceProcessContext(
            instance, PyProjectFileTarget(str(REPO / "pyproject.toml"))
        ) as workspace,
    ):
        context = workspace.create_request_context()
        parent = instance.get_run_by_id(parent_id)
        # The UI addresses the re-execution to the location the parent run records.
        location = parent.remote_job_origin.location_name
        assert context.code_location_names == [location]
        params = {
            "selector": {
                "repositoryLocationName": location,
                "repositoryName": "__repository__",
                "jobName": parent.job_name,
            },
            "executionMetadata": {
                "parentRunId": parent_id,
                "rootRunId": parent_id,
                "tags": [  # the parent's partition, as the UI carries it over
                    {"key": k, "value": v}
                    for k, v in parent.tags.items()
                    if k.startswith("dagster/partition")
                ],
            },
            "stepKeys": [RERUN_STEP],
        }
        result = execute_dagster_graphql(context, QUERY, {"params": params})
        launched = result.data["launchRunReexecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        if instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.QUEUED:
            instance.launch_run(run_id, context)  # what the daemon does with a queued run
        deadline = time.monotonic() + 600
        while not instance.get_run_by_id(run_id).is_finished:
            assert time.monotonic() < deadline, "the re-execution did not finish"
            time.sleep(0.5)
        run = instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS, run.status
    assert run.parent_run_id == parent_id and run.root_run_id == parent_id
    assert run.step_keys_to_execute == [RERUN_STEP]
    assert run.tags["dagster/partition"] == PARTITION


def check_readme_materialize(cli_run: dict) -> None:
    """The README's command for one asset and one month runs as written, after the run."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (command,) = [
        line.split("  #")[0].strip()
        for line in readme.splitlines()
        if "dagster asset materialize" in line and not line.startswith(("`", "-"))
    ]
    words = shlex.split(command)
    assert words[0] == ".venv/bin/dagster"
    assert cli_run["code"] == 0, cli_run["err"][-3000:]
    done = subprocess.run(
        [str(BIN / "dagster"), *words[1:]],
        cwd=REPO,
        env={**os.environ, **cli_run["env"]},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    asset = dg.AssetKey.from_user_string(words[words.index("--select") + 1])
    partition = words[words.index("--partition") + 1]
    with instance_at(cli_run["env"]) as instance:
        (latest,) = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[partition]), limit=1
        ).records
        assert latest.run_id not in cli_run["out"]  # a new run, not the CLI's


def test_a_failed_warning_check_is_said_but_does_not_fail_the_run():
    """A WARN check (the holdout within 25 %) that fails is printed as a warning; only an ERROR
    (blocking) check makes the run fail with "nothing was published"."""
    from types import SimpleNamespace

    def evaluation(name: str, severity: dg.AssetCheckSeverity) -> SimpleNamespace:
        return SimpleNamespace(
            event_type_value="ASSET_CHECK_EVALUATION",
            step_key="work__model_validation",
            event_specific_data=dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(["work", "model_validation"]),
                check_name=name,
                passed=False,
                severity=severity,
                description="off by 31 %",
            ),
        )

    steps = cli.StepLines(out=io.StringIO())
    steps(evaluation("holdout_total_within_25pct", dg.AssetCheckSeverity.WARN))
    assert steps.failed_checks == []
    assert steps.warnings == [
        "check holdout_total_within_25pct on work/model_validation failed: off by 31 %"
    ]
    steps(evaluation("fits_converged", dg.AssetCheckSeverity.ERROR))
    assert [c.split(":")[0] for c in steps.failed_checks] == [
        "check fits_converged on work/model_validation failed"
    ]


def orders_step_warnings(metadata: dict) -> list[str]:
    """What the CLI warns of the orders' staging step whose metadata is `metadata`."""
    from types import SimpleNamespace

    steps = cli.StepLines(out=io.StringIO())
    steps._staging_warnings(SimpleNamespace(asset_key=dg.AssetKey(["staging", "orders"])), metadata)
    return steps.warnings


def test_a_file_mostly_quarantined_and_columns_ignored_are_warned():
    """A staging step's file whose rows were nearly all quarantined (dates the contract does not
    read) and a column the contract does not know (a header variant it cannot match) are said
    as warnings: the run published a month without them and said nothing. A file with a few
    quarantined rows, and a resent copy (said as a copy), are not."""
    metadata = {
        "ignored_columns": dg.MetadataValue.json({"orders/a.csv": ["coupon code"]}),
        "quarantined_by_file": dg.MetadataValue.json(
            {"orders/a.csv": [1064, 1064], "orders/b.csv": [500, 3], "orders/c.csv": [9, 9]}
        ),
        "copies_of_earlier_files": dg.MetadataValue.json({"orders/c.csv": "orders/old.csv"}),
    }
    warnings = orders_step_warnings(metadata)
    assert warnings[:2] == [
        "orders/a.csv: column(s) coupon code ignored: not columns of orders (docs/CONTRACTS.md "
        "lists them; a column named differently is not read)",
        "orders/a.csv: 1,064 of 1,064 rows quarantined; staging.quarantine says why (fix the "
        "export and drop it again: the changed file replaces its rows; a row quarantined as "
        "duplicate_key repeats a key staged from another file, which a later file never "
        "replaces: to correct it, change the file it was staged from)",
    ]
    assert not any("orders/b.csv" in w for w in warnings)
    assert not any("orders/c.csv: 9 of 9" in w for w in warnings)


def test_a_file_that_looks_cut_short_is_warned():
    """A staging step's file cut mid-row (its last line without a line end, its last row
    quarantined) is said as a warning naming the file and what to do; the run said only "1
    quarantined" before (an on-call review: the part of a new file published a version)."""
    metadata = {
        "cut_short_files": dg.MetadataValue.json({"orders/o_07.csv": ["wrong_field_count"]}),
    }
    warnings = orders_step_warnings(metadata)
    assert warnings == [
        "orders/o_07.csv looks cut short: its last line has no line end and its last row was "
        "quarantined (wrong_field_count). If it was copied while still being written, put the "
        "whole export in its place and run again (a version published from the part stays in "
        "history until `engagement-box retire --version N` removes it; docs/OPERATIONS.md)"
    ]


def test_a_key_staged_again_from_another_files_repeat_is_warned():
    """A changed file that dropped a key repeated in another file: that file's row was staged in
    its place, with its own values (an amount from 51.83 to 999.99), and the run said nothing
    (review): only the step's metadata had it."""
    metadata = {"duplicates_restaged": dg.MetadataValue.json({"orders/w4.csv": 1})}
    warnings = orders_step_warnings(metadata)
    assert warnings == [
        "1 key(s) of staging.orders that a changed file no longer holds are staged again from the "
        "row that repeated them in another file (orders/w4.csv 1): that row's values count now, "
        "and may differ from those the changed file had (staging.quarantine held it as "
        "duplicate_key)"
    ]


def test_the_spark_staging_warnings_name_each_files_source():
    """The Spark engine stages every source in one step (`spark/staging`): a column ignored is
    said with the source of its file, not with the step's name (it said "not columns of
    staging")."""
    from types import SimpleNamespace

    steps = cli.StepLines(out=io.StringIO())
    metadata = {
        "ignored_columns": dg.MetadataValue.json(
            {"customers/b.csv": ["Social Handle"], "orders/a.csv": ["coupon code"]}
        ),
        "quarantined_by_file": dg.MetadataValue.json({"reviews/r.parquet": [4, 2]}),
    }
    steps._staging_warnings(SimpleNamespace(asset_key=dg.AssetKey(["spark", "staging"])), metadata)
    assert [w.split(" (")[0] for w in steps.warnings] == [
        "customers/b.csv: column(s) Social Handle ignored: not columns of customers",
        "orders/a.csv: column(s) coupon code ignored: not columns of orders",
        "reviews/r.parquet: 2 of 4 rows quarantined; staging.quarantine says why",
    ]


def test_step_line_gives_the_cpu_seconds_the_step_used():
    """A step that keeps a core busy shows CPU seconds near its wall seconds; one that waits
    shows about none (what a benchmark reads to tell a busy step from a waiting one)."""
    from types import SimpleNamespace

    def event(kind: str, step: str, duration_ms: float = 0.0) -> SimpleNamespace:
        return SimpleNamespace(
            event_type_value=kind,
            step_key=step,
            event_specific_data=SimpleNamespace(duration_ms=duration_ms),
        )

    out = io.StringIO()
    steps = cli.StepLines(out=out)
    steps(event("STEP_START", "busy"))
    spent = time.process_time()
    while time.process_time() - spent < 0.3:  # CPU time, not the wall clock
        sum(range(1000))
    steps(event("STEP_SUCCESS", "busy", duration_ms=300.0))
    steps(event("STEP_START", "idle"))
    steps(event("STEP_FAILURE", "idle"))
    lines = step_lines(cli.StepLines.HEADER + "\n" + out.getvalue())
    assert lines["busy"][1:3] == ["ok", "0.3"]
    assert float(lines["busy"][3]) >= 0.3
    assert lines["idle"][1] == "FAILED"
    assert float(lines["idle"][3]) < 0.1


def test_step_lines_show_each_steps_path_and_why_a_daily_run_computed_in_full():
    """An engineer reading a daily run's console sees which steps carried the earlier as-of
    forward and, when some did not, why each of the others computed in full."""
    from types import SimpleNamespace

    def materialized(step: str, path: str | None, why: str = "") -> SimpleNamespace:
        metadata = {"dagster/row_count": dg.MetadataValue.int(10)}
        if path is not None:
            metadata["computation"] = dg.MetadataValue.text(path)
            metadata["computation_reason"] = dg.MetadataValue.text(why)
        return SimpleNamespace(
            event_type_value="ASSET_MATERIALIZATION",
            step_key=step,
            event_specific_data=SimpleNamespace(materialization=SimpleNamespace(metadata=metadata)),
        )

    def done(step: str) -> SimpleNamespace:
        return SimpleNamespace(
            event_type_value="STEP_SUCCESS",
            step_key=step,
            event_specific_data=SimpleNamespace(duration_ms=100.0),
        )

    def console(events) -> tuple[dict[str, list[str]], list[str]]:
        out = io.StringIO()
        steps = cli.StepLines(out=out)
        for event in events:
            steps(event)
        return step_lines(cli.StepLines.HEADER + "\n" + out.getvalue()), steps.computed_in_full()

    daily = [
        materialized("work__customer_summary", "incremental", "only new orders since ..."),
        done("work__customer_summary"),
        materialized(
            "work__engagement_value",
            "cold",
            "a review is dated between the as-ofs (since the run as of ...): computed in full",
        ),
        done("work__engagement_value"),
        materialized("customer_persona", "assigned", "the model fitted as of ..."),
        done("customer_persona"),
        materialized("staging__orders", None),
        done("staging__orders"),
        # two steps of one reason: both named, on one line (the second was left out)
        materialized("work__buyer_days", "cold", "an erasure since the run as of ..."),
        done("work__buyer_days"),
        materialized("work__cohort_retention", "cold", "an erasure since the run as of ..."),
        done("work__cohort_retention"),
    ]
    lines, full = console(daily)
    assert lines["work__customer_summary"][-1] == "incremental"
    assert lines["work__engagement_value"][-1] == "cold"
    assert lines["customer_persona"][-1] == "assigned"
    assert lines["staging__orders"][-1] == "10"  # no path: the line ends with its rows
    # The reason as the step gives it, without saying "computed in full" twice on one line.
    assert full == [
        "work__engagement_value: a review is dated between the as-ofs (since the run as of ...)",
        "work__buyer_days, work__cohort_retention: an erasure since the run as of ...",
    ]

    # Tables without a row count (a version's marts left standing): no "in 2 tables" alone.
    def uncounted(step: str) -> SimpleNamespace:
        event = materialized(step, None)
        event.event_specific_data.materialization.metadata.clear()
        return event

    lines, _ = console([uncounted("work__version_inputs")] * 2 + [done("work__version_inputs")])
    assert "tables" not in lines["work__version_inputs"], lines

    # A first run computes everything in full: nothing to explain.
    _, full = console(
        [
            materialized("work__customer_summary", "cold", "no earlier run"),
            done("work__customer_summary"),
        ]
    )
    assert full == []
    # A run that computed every step in full for a reason (a changed file, an erasure, a persona
    # refit beside them) says why, as a daily run does (it said nothing: review).
    _, full = console(
        [
            materialized("work__buyer_days", "cold", "an erasure since the run as of ..."),
            done("work__buyer_days"),
            materialized("customer_persona", "refit", "the refit is due"),
            done("customer_persona"),
        ]
    )
    assert full == ["work__buyer_days: an erasure since the run as of ..."]


def test_on_a_new_dagster_home_dagsters_notice_comes_before_the_step_lines(tmp_path):
    """A DAGSTER_HOME of the engineer's own, new and without dagster.yaml (telemetry on): Dagster
    prints its telemetry notice once, on stderr. In a console (both streams in one place) it
    comes before the run's step lines, never between two of them."""
    exports = tmp_path / "exports"
    generator.generate(
        exports, generator.GeneratorConfig(customers=120, seed=3, end=dt.date(2025, 12, 31))
    )
    env = environment(tmp_path, exports)
    (Path(env["DAGSTER_HOME"]) / "dagster.yaml").unlink()
    env["HOME"] = str(tmp_path / "home")  # Dagster keeps a user id under ~/.dagster
    console = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            code = cli.main(["run", "--month", MONTH])
    out = console.getvalue()
    assert code == 0, out[-3000:]
    assert "Telemetry:" in out  # Dagster's own notice, once
    table = out.split(cli.StepLines.HEADER.strip(), 1)[1].splitlines()[1:]
    steps = [line for line in table if line.split()[1:2] == ["ok"]]
    assert len(steps) >= 19
    assert table[: len(steps)] == steps  # the table is whole: no other line inside it


def empty_exports(root: Path) -> Path:
    """An export folder with every source's folder, empty: nothing stops a run on its account."""
    exports = root / "exports"
    for source in SOURCES:
        (exports / source).mkdir(parents=True)
    return exports


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        (
            "ENGAGEMENT_TIME_UNIT",
            "M",
            "ENGAGEMENT_TIME_UNIT='M' is not valid: ENGAGEMENT_TIME_UNIT must be D (days) or "
            "W (weeks), got 'M'",
        ),
        (
            "ENGAGEMENT_FX_RATES",
            "{bad",
            "ENGAGEMENT_FX_RATES='{bad' is not valid: expected a JSON object such as ",
        ),
        (
            "ENGAGEMENT_AS_OF",
            "2025-13-01",
            "ENGAGEMENT_AS_OF='2025-13-01' is not valid: expected a date YYYY-MM-DD",
        ),
        # Refused only in work/version_inputs after the staging steps (exit 1), and the ticks
        # requested a failing run every day (a review).
        ("ENGAGEMENT_AS_OF", "2999-12-31", "ENGAGEMENT_AS_OF=2999-12-31 is after the run's date"),
        # A traceback (exit 1); a day inside a month ran the month after it.
        (
            "ENGAGEMENT_HISTORY_START",
            "2999-01-01",
            "ENGAGEMENT_HISTORY_START=2999-01-01 is after the current month",
        ),
        (
            "ENGAGEMENT_HISTORY_START",
            "2024-03-15",
            "ENGAGEMENT_HISTORY_START='2024-03-15' is not valid: expected a month's first day",
        ),
    ],
)
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_bad_setting_is_said_in_one_line_before_anything_runs(tmp_path, name, text, said, force):
    """A setting that does not parse stops the run before any step (exit 2, README "Exit
    codes"), in one line naming the variable: it gave 30 lines of traceback when a version
    stood, and failed a step (exit 1) on a new warehouse or with --force."""
    env = {**environment(tmp_path, empty_exports(tmp_path)), name: text}
    code, out, err = run_cli(env, *force)
    assert code == 2
    assert err.startswith(f"FAILED before any step: {said}") and err.count("\n") == 1, err
    assert "run:" not in out and not (tmp_path / "warehouse").exists()  # nothing ran


def test_a_dagster_home_that_is_a_file_is_said_in_one_line(tmp_path):
    """DAGSTER_HOME pointing at dagster.yaml itself (a plausible slip) gave a traceback ending
    in FileExistsError, exit 1."""
    home = tmp_path / "dagster.yaml"
    home.write_text("telemetry:\n  enabled: false\n")
    env = environment(tmp_path, empty_exports(tmp_path)) | {"DAGSTER_HOME": str(home)}
    code, _, err = run_cli(env)
    assert code == 2
    assert err.startswith(f"FAILED before any step: DAGSTER_HOME={home} cannot be the Dagster")
    assert err.count("\n") == 1, err


def test_run_with_the_spark_engine_says_how_to_run_the_spark_graph(tmp_path):
    """With ENGAGEMENT_ENGINE=spark, `engagement-box run` died with a traceback ("Could not find
    job 'engagement_pipeline'"): the Spark graph has its own job, not partitioned by month."""
    env = environment(tmp_path, empty_exports(tmp_path)) | {"ENGAGEMENT_ENGINE": "spark"}
    code, out, err = run_cli(env)
    assert code == 2 and "Traceback" not in err
    assert err.startswith("FAILED before any step: engagement-box run runs the DuckDB engine")
    # a command that works where the user is: their DAGSTER_HOME kept (the advice set it to
    # the checkout's, over theirs, a review), this Python's dagster, the code found from anywhere
    dagster = Path(sys.executable).with_name("dagster")
    home = Path(env["DAGSTER_HOME"]).absolute()
    assert (
        f"`DAGSTER_HOME={home} {dagster} job execute -m pipelines.definitions -d "
        f"{settings.REPO_ROOT} -j spark_pipeline`"
    ) in err, err


def test_the_spark_command_given_makes_a_relative_dagster_home_absolute(tmp_path, monkeypatch):
    """`DAGSTER_HOME=.dagster`, as `.env.example` had it uncommented before 2026-12-06: the command given left it out, and
    Dagster refused the relative value ("must be an absolute path"; a re-review)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", ".dagster")
    assert settings.spark_job_command().startswith(f"DAGSTER_HOME={tmp_path / '.dagster'} ")
    monkeypatch.delenv("DAGSTER_HOME")
    assert settings.spark_job_command().startswith(
        f"DAGSTER_HOME={settings.REPO_ROOT / '.dagster'} "
    )


@pytest.mark.parametrize("month", ["2025-1", "2025-001", "25-01"])
def test_a_month_without_its_two_digits_is_refused(tmp_path, month):
    """`--month 2025-1` ran January (strptime's %m takes one digit): YYYY-MM means two digits,
    and a month written otherwise is one line and exit 2, as a month out of range is."""
    env = environment(tmp_path, empty_exports(tmp_path))
    code, out, err = run_cli(env, "--month", month)
    assert code == 2, out
    (line,) = err.splitlines()
    assert line == (
        f"engagement-box run: month {month!r} is not a month: write it as YYYY-MM (a four-digit "
        "year and a two-digit month, e.g. 2025-01)"
    )
    assert "run:" not in out and not (tmp_path / "warehouse").exists()  # nothing ran


def test_a_damaged_working_database_fails_once_before_any_step(tmp_path):
    """A working database that is not a DuckDB file failed each staging step on its own, with
    the same hint six times, and exit 1: it is now one line before any step, exit 2."""
    env = environment(tmp_path, empty_exports(tmp_path))
    working = default_working(Path(env["ENGAGEMENT_WAREHOUSE"]))
    working.parent.mkdir()
    working.write_bytes(b"not a database" * 1000)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 2, out[-3000:]
    (line,) = err.splitlines()
    assert line.startswith(
        f"FAILED before any step: the working database {working} is damaged and cannot be "
        "opened; restore it (and its .wal file, if any) from a backup, or point "
        "ENGAGEMENT_WORKING_DB and ENGAGEMENT_WAREHOUSE at new files to start a new warehouse "
        "(the published file and its history keep the versions published so far)"
    ), line
    assert "run:" not in out  # no run was created


def test_the_check_before_a_run_leaves_a_new_or_locked_working_database_to_the_run(
    tmp_path, monkeypatch
):
    """A working database not there yet (a first run) is no problem and is not created (a
    warehouse from before it is moved there when the run starts); one another process holds
    is not damaged: the steps wait for its lock, as before."""
    working = tmp_path / "w.working.duckdb"
    monkeypatch.setenv("ENGAGEMENT_WORKING_DB", str(working))
    assert cli._working_database_problem() is None
    assert not working.exists()

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(60)",
            str(working),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli._working_database_problem() is None
    finally:
        holder.kill()
        holder.wait()


def test_an_export_folder_holding_no_file_is_said_so(december_run, tmp_path):
    """ENGAGEMENT_DATA_DIR at a folder with no export files, on a warehouse with data: the run
    said "every export is staged as it is", as if the folder held the files it staged. It now
    says the folder holds none, and that the standing version stays (exit 0, no run)."""
    copy = copy_run(december_run, tmp_path / "run")
    exports = empty_exports(tmp_path / "elsewhere")
    env = copy_environment(tmp_path, copy, exports=exports)  # the current audiences
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    said = out.splitlines()[-1]
    assert said.startswith(
        f"nothing to do: {exports} holds no .csv or .parquet export under any source folder "
        "(orders, "
    ), said
    assert "version 1 (as of 2025-12-31), computed from the exports staged before" in said
    assert "stands" in said
    assert "run:" not in out


def test_a_file_that_stages_no_row_computes_nothing_after_staging(december_run, tmp_path):
    """The sensor starts a run for any new file. An export sent again under another name stages
    no row: the run stages it (its rows quarantined as repeated keys), finds that version 1 was
    computed from the same inputs, skips every later step and says so. --force computes them."""
    copy = copy_run(december_run, tmp_path / "run")
    reviews = sorted((copy.exports / "reviews").iterdir())[-1]
    resent = reviews.with_name(f"resent_{reviews.name}")
    resent.write_bytes(reviews.read_bytes())
    rows = pl.read_parquet(resent).height if resent.suffix == ".parquet" else None
    env = copy_environment(tmp_path, copy)
    copy.database.unlink()  # the analysts' file, lost: built again though nothing is computed
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    lines = out.splitlines()
    status = {
        line.split()[0]: line.split()[1]
        for line in lines
        if line.startswith("  ") and len(line.split()) > 1
    }
    assert status["staging__reviews"] == "ok" and status["work__version_inputs"] == "ok"
    assert status["work__customer_summary"] == status["published_marts"] == "skipped"
    # the partitions version 1 holds are not rows this run wrote ("52,200 in 21 tables")
    (inputs_line,) = [line for line in lines if line.split()[:1] == ["work__version_inputs"]]
    assert " tables" not in inputs_line, inputs_line
    assert f"warning: reviews/{resent.name} holds the same content as reviews/{reviews.name}" in out
    assert (
        "computed nothing: version 1 (as of 2025-12-31) was computed from these inputs (the "
        "files that staged rows, erasures, settings, model code) and stays; the steps after "
        "work__version_inputs were skipped (--force computes them); this run took in 1 "
        f"file(s): 0 rows staged, {rows:,} quarantined (staging.quarantine says why)"
    ) in lines
    assert "emitted no result" not in out + err  # Dagster's note on each skipped step: not said
    # The analysts' file is there again and shows this ingest: the resent file and its rows.
    with duckdb.connect(str(copy.database), read_only=True) as con:
        (quarantined,) = con.execute(
            "SELECT count(*) FROM staging.quarantine WHERE source_file = $f",
            {"f": f"reviews/{resent.name}"},
        ).fetchone()
    assert quarantined > 0

    code, out, err = run_cli(env, "--month", MONTH, "--force")
    assert code == 0, err[-3000:]
    assert "skipped" not in out
    assert (
        "published nothing: the inputs equal those of version 1 (as of 2025-12-31), which stays"
        in out
    )


def test_exports_moved_into_an_archive_folder_compute_nothing(december_run, tmp_path):
    """A data engineer moves the processed orders exports into orders/archive/. The sensor
    sees new paths and starts a run: it reads none of them again (each is a file taken in
    before, moved), quarantines nothing, and the version standing stays."""
    copy = copy_run(december_run, tmp_path / "run")
    orders = copy.exports / "orders"
    archive = orders / "archive"
    archive.mkdir()
    files = sorted(p for p in orders.iterdir() if p.is_file())
    for path in files:
        path.rename(archive / path.name)
    env = copy_environment(tmp_path, copy)
    with duckdb.connect(str(default_working(copy.database)), read_only=True) as con:
        (quarantined_before,) = con.execute("SELECT count(*) FROM staging.quarantine").fetchone()
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert (
        f"moved, not read again: orders/archive/{files[0].name} (taken in as "
        f"orders/{files[0].name}) and {len(files) - 1} more;"
    ) in out
    assert "computed nothing: version 1 (as of 2025-12-31) was computed from these inputs" in out
    with duckdb.connect(str(default_working(copy.database)), read_only=True) as con:
        (quarantined,) = con.execute("SELECT count(*) FROM staging.quarantine").fetchone()
        moved = con.execute(
            "SELECT count(*) FROM staging.ingested_files WHERE moved_to LIKE 'orders/archive/%'"
        ).fetchone()[0]
    assert quarantined == quarantined_before
    assert moved == len(files)
    # The analysts' copy says where the files are now too (it was not rebuilt: review).
    with duckdb.connect(str(copy.database), read_only=True) as con:
        published = con.execute(
            "SELECT count(*) FROM staging.ingested_files WHERE moved_to LIKE 'orders/archive/%'"
        ).fetchone()[0]
    assert published == len(files)


def test_a_warehouse_staged_under_earlier_rules_takes_its_files_in_again(december_run, tmp_path):
    """After an upgrade that changes how values are read, the first run takes every export
    file in again and says so in one line (not "nothing to do": the rows would keep reading
    as the earlier rules left them)."""
    from engagement_box.staging.contracts import STAGING_RULES

    copy = copy_run(december_run, tmp_path / "run")
    with duckdb.connect(str(default_working(copy.database))) as con:
        con.execute("UPDATE staging.ingested_files SET rules = NULL")  # as an earlier version
        files = dict(
            con.execute("SELECT source, count(*) FROM staging.ingested_files GROUP BY 1").fetchall()
        )
    env = copy_environment(tmp_path, copy)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    counts = ", ".join(f"{source} {n}" for source, n in sorted(files.items()))
    assert (
        f"taken in again under the ingest's current rules (version {STAGING_RULES}, time zone "
        f"UTC), though unchanged: {counts} file(s), taken in by an earlier version of "
        "Engagement Box or under another ENGAGEMENT_TIME_ZONE"
    ) in out
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0 and "\nnothing to do: every export is staged as it is" in out, out


def test_audience_files_behind_the_current_version_are_written_though_nothing_is_new(
    december_run, tmp_path
):
    """A run that published and then failed writing the audiences, or another
    ENGAGEMENT_AUDIENCE_DIR: the audience files are not the current version's, so a run with
    the same inputs computes (and writes them) instead of skipping."""
    copy = copy_run(december_run, tmp_path / "run")
    header = (copy.exports / "orders" / sorted(os.listdir(copy.exports / "orders"))[0]).read_text()
    (copy.exports / "orders" / "orders_none_today.csv").write_text(header.splitlines()[0] + "\n")
    elsewhere = tmp_path / "new_audiences"
    env = copy_environment(tmp_path, copy, elsewhere)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert "skipped" not in out and "computed nothing" not in out
    assert json.loads((elsewhere / "_written_from.json").read_text())["snapshot_id"] == 1
    assert any(elsewhere.rglob("*.parquet"))
    # the working database remembers its folder, for an erase run with the Spark engine's
    # settings (`erasure.erase`); the copy's record of the original's folder is not its own
    from engagement_box.activation import audiences

    working = default_working(copy.database)
    remembered, passed = audiences.remembered_folders(audiences.folder_records(working, None))
    assert remembered == [elsewhere.resolve()] and passed == {}


def test_with_nothing_new_audience_files_behind_are_written_alone_and_other_files_stay(
    december_run, tmp_path
):
    """A run that published and then failed writing the audiences left the files a version
    behind, and the next run said "nothing to do": only --force wrote them. And every audience
    export emptied the whole ENGAGEMENT_AUDIENCE_DIR, a shared folder's other files with it.
    Now nothing new but the files behind runs the audience files alone, into their own
    folders."""
    copy = copy_run(december_run, tmp_path / "run")
    shared = tmp_path / "shared"
    (shared / "notes").mkdir(parents=True)
    (shared / "notes" / "campaign.csv").write_text("email\nsomeone@example.com\n")
    (shared / "readme.txt").write_text("marketing's folder\n")
    env = copy_environment(tmp_path, copy, shared)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert "nothing new to compute: version 1 stands" in out, out
    assert "holds no audience files of version 1" in out
    lines = step_lines(out)
    assert list(lines) == ["activation__audiences"], out  # nothing computed
    record = json.loads((shared / "_written_from.json").read_text())
    assert (record["snapshot_id"], record["as_of"]) == (1, "2025-12-31")
    files = {p.relative_to(shared).as_posix() for p in shared.rglob("*.*")}
    assert set(record["files"]) == {
        f for f in files if f.split("/")[0] in ("rfm_segment", "quadrant")
    }
    written = {p.relative_to(shared).parts[0] for p in shared.rglob("*.parquet")}
    assert written == {"rfm_segment", "quadrant"}
    assert (shared / "readme.txt").read_text() == "marketing's folder\n"
    assert (shared / "notes" / "campaign.csv").exists()
    assert not list(shared.glob(".*"))  # no folder left from the swap
    # Dagster (a new instance here, as after a run killed in its publish) had no record of the
    # month's marts: the UI showed them missing for good, since nothing new starts no run.
    with instance_at(env) as instance:
        for key in (dg.AssetKey(["marts", "customer"]), dg.AssetKey(["work", "customer_value"])):
            assert instance.get_materialized_partitions(key) == {f"{MONTH}-01"}, key
        # and a mart's row count stays what the UI shows (the version's rows)
        latest = instance.get_latest_materialization_event(dg.AssetKey(["marts", "customer"]))
        count = latest.asset_materialization.metadata["dagster/row_count"].value
    reader = duckdb.connect(str(copy.database), read_only=True)
    try:
        assert (count,) == reader.execute("SELECT count(*) FROM marts.customer").fetchone()
    finally:
        reader.close()

    code, out, err = run_cli(env, "--month", MONTH)  # now current: nothing at all
    assert code == 0 and out.strip().splitlines()[-1].startswith("nothing to do"), out


def test_nothing_to_do_names_the_files_taken_in_that_left_the_export_folder(december_run, tmp_path):
    """A user who deleted an export to withdraw its rows was told only "nothing to do": the
    rows stay staged (README "Exports"), which the run now says, naming the file."""
    copy = copy_run(december_run, tmp_path / "run")
    gone = sorted((copy.exports / "reviews").iterdir())[0]
    gone.unlink()
    code, out, err = run_cli(copy_environment(tmp_path, copy), "--month", MONTH)
    assert code == 0, err[-3000:]
    said = out.strip().splitlines()[-1]
    assert said.startswith("nothing to do: every export is staged as it is"), out
    assert (
        f" 1 file(s) taken in are no longer in {copy.exports} (reviews/{gone.name}): their rows "
        "stay staged; to withdraw rows, send the file again without them. No run started"
    ) in said


def test_nothing_to_do_for_a_month_before_its_orders_names_the_as_of_and_why(
    december_run, tmp_path
):
    """A month run before its orders arrived said "nothing to do ... for this run's as-of"
    (an on-call review): which date the month resolved to, and that none of its orders is
    staged yet, was left to guess. The month after the data's end stands on version 1."""
    copy = copy_run(december_run, tmp_path / "run")
    code, out, err = run_cli(copy_environment(tmp_path, copy), "--month", "2026-01")
    assert code == 0, err[-3000:]
    said = out.strip().splitlines()[-1]
    assert said.startswith(
        "nothing to do: every export is staged as it is, and version 1 (as of 2025-12-31) was "
        "computed from the same inputs"
    ), out
    assert (
        "No completed order dated in 2026-01 is staged yet, so the month's as-of is the last "
        "completed order's day, 2025-12-31: a run after 2026-01's orders are exported computes "
        "it. No run started"
    ) in said
    code, out, err = run_cli(copy_environment(tmp_path, copy), "--month", MONTH)
    assert code == 0 and "version 1 (as of 2025-12-31)" in out, err[-3000:]
    assert "No completed order dated" not in out and "capped" not in out  # its own month's end


def test_a_file_gone_that_staged_no_row_is_not_said_to_keep_rows(tmp_path):
    """A header-only export removed from the folder was named after "nothing to do" with
    "their rows stay staged; to withdraw rows, send the file again" (a review): it staged
    none. Only files that staged rows are named."""
    from engagement_box.sql import load_sql
    from engagement_box.staging.contracts import SOURCES
    from engagement_box.staging.ingestion import files_not_in_folder

    exports = tmp_path / "exports"
    for source in SOURCES.values():
        (exports / source.name).mkdir(parents=True)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA staging")
    con.execute(load_sql("staging/create_ingested_files"))
    for path, staged in (("reviews/full.csv", 5), ("reviews/header_only.csv", 0)):
        con.execute(
            "INSERT INTO staging.ingested_files (source, source_file, sha256, size_bytes, "
            "mtime_ns, rows_read, rows_staged, rows_quarantined, ingested_at) "
            "VALUES ('reviews', $path, 'x', 1, 1, $staged, $staged, 0, TIMESTAMP '2026-01-01')",
            {"path": path, "staged": staged},
        )
    assert files_not_in_folder(con, exports) == ["reviews/full.csv"]
    con.close()


def test_nothing_to_do_marks_failed_a_run_whose_process_was_killed(december_run, tmp_path):
    """A run killed with kill -9 stayed STARTED in the UI while every later command found
    nothing to do (the check ran only when a run started): for days, in a quiet period."""
    from pipelines.runs import process_tags

    copy = copy_run(december_run, tmp_path / "run")
    env = copy_environment(tmp_path, copy)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with dg.DagsterInstance.local_temp(env["DAGSTER_HOME"]) as instance:
        killed = dg.DagsterRun(
            job_name="engagement_pipeline",
            status=dg.DagsterRunStatus.STARTED,
            tags=process_tags(gone.pid),
        )
        instance.add_run(killed)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert "nothing to do" in out
    assert f"run {killed.run_id} was marked failed: its process ended without finishing it" in out
    with dg.DagsterInstance.local_temp(env["DAGSTER_HOME"]) as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_run_killed_after_its_publish_is_said_to_have_published_its_version(
    december_run, tmp_path
):
    """kill -9 after the publish's commit: the version stands whole, but Dagster showed only a
    failed run, "nothing it left half-done was published" (an on-call review). The CLI and the
    run's failure in Dagster now name the version it published."""
    from pipelines.runs import WORKING_DB_TAG, process_tags

    copy = copy_run(december_run, tmp_path / "run")
    env = copy_environment(tmp_path, copy)
    working_path = default_working(copy.database)
    working = duckdb.connect(str(working_path), read_only=True)
    try:
        (publisher,) = working.execute(
            "SELECT run_id FROM marts.snapshot_log WHERE snapshot_id = 1"
        ).fetchone()
    finally:
        working.close()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with dg.DagsterInstance.local_temp(env["DAGSTER_HOME"]) as instance:
        instance.add_run(
            dg.DagsterRun(
                job_name="engagement_pipeline",
                run_id=publisher,
                status=dg.DagsterRunStatus.STARTED,
                tags={**process_tags(gone.pid), WORKING_DB_TAG: str(working_path)},
            )
        )
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert (
        f"run {publisher} was marked failed: its process ended without finishing it, after it "
        "published version 1 (as of 2025-12-31), which stands whole"
    ) in out
    with instance_at(env) as instance:
        assert instance.get_run_by_id(publisher).status == dg.DagsterRunStatus.FAILURE
        (failure,) = [
            e
            for e in instance.all_logs(publisher)
            if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
        ]
        assert "after it published version 1 (as of 2025-12-31), which stands whole" in (
            failure.message
        )


def test_a_backup_restored_beside_todays_register_is_refused_until_erased_again(
    december_run, tmp_path
):
    """A backup review: the warehouse folder restored from a backup taken before an erasure
    (its register too, as the backup list said) ran on and published the person again, with
    no word. Restored as the docs now say (every file but the register), the run refuses and
    names the command; `erase --from-register` erases the person again, keys unprinted, and
    the next run publishes without them."""
    from engagement_box.governance import erasure

    copy = copy_run(december_run, tmp_path / "run")
    audience_files = tmp_path / "audiences"  # this warehouse's own, outside its folder
    env = copy_environment(tmp_path, copy, audiences=audience_files)
    code, _, err = run_cli(env, "--month", MONTH)  # nothing new: writes the audience files
    assert code == 0 and next(audience_files.rglob("*.csv"), None), err[-2000:]
    folder = copy.database.parent
    person = pl.read_csv(next(audience_files.rglob("*.csv")), infer_schema=False)["customer_id"][0]
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)
    code, _, err = main_cli(env, "erase", "--customer-id", person)
    assert code == 0, err

    register = erasure.register_path(default_working(copy.database))
    kept = register.read_bytes()  # today's register stays; everything else is the backup's
    shutil.rmtree(folder)
    shutil.copytree(backup, folder)
    register.write_bytes(kept)

    def in_audiences() -> bool:
        return person in "".join(p.read_text() for p in audience_files.rglob("*.csv"))

    def published_holds() -> bool:
        reader = duckdb.connect(str(copy.database), read_only=True)
        try:
            return bool(
                reader.execute(
                    "SELECT count(*) FROM history.customer WHERE customer_id = $id", {"id": person}
                ).fetchone()[0]
            )
        finally:
            reader.close()

    assert not in_audiences()
    code, out, err = run_cli(env, "--month", MONTH)
    assert code != 0 and "engagement-box erase --from-register" in out + err, out + err
    assert person not in out + err
    # the refused run's audience catch-up (its consent differs from the files') wrote the
    # backup's people back into the files (a review): it leaves them as they are
    assert not in_audiences()
    code, out, err = main_cli(env, "erase", "--from-register")
    assert code == 0, err
    assert "found in its staged rows and versions and erased again" in out and person not in out, (
        out
    )
    assert not published_holds()
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert not published_holds() and not in_audiences()
    code, out, _ = main_cli(env, "erase", "--from-register")
    assert code == 0 and "nothing to erase again" in out, out


def test_a_working_database_restored_alone_is_told_both_refusals_at_once(december_run, tmp_path):
    """A re-review: the working database alone restored from a backup taken before a version
    and an erasure was refused for the published file's versions; once that was dealt with,
    the next run was refused again, for the register. The first refusal says both."""
    copy = copy_run(december_run, tmp_path / "run")
    env = copy_environment(tmp_path, copy)
    working = default_working(copy.database)
    backup = tmp_path / "working.backup.duckdb"
    shutil.copy(working, backup)
    code, _, err = run_cli(env, "--month", "2025-11")  # version 2, which the backup lacks
    assert code == 0, err[-2000:]
    person = duckdb.connect(str(working), read_only=True)
    try:
        (customer,) = person.execute("SELECT min(customer_id) FROM marts.customer").fetchone()
    finally:
        person.close()
    code, _, err = main_cli(env, "erase", "--customer-id", customer)
    assert code == 0, err
    shutil.copy(backup, working)  # the restore, of the working database only

    code, out, err = run_cli(env, "--month", MONTH)

    assert code == 2, out + err
    (line,) = err.splitlines()
    assert "that the working database" in line and "has no record of" in line, line
    assert line.index("has no record of") < line.index("engagement-box erase --from-register")
    assert customer not in out + err


def test_a_backup_restored_with_its_own_register_leaves_the_newer_audience_files_alone(
    december_run, tmp_path
):
    """A re-review: the backup restored register and all (as the docs say not to): nothing
    could tell that people were erased since, and the next run wrote them back into the
    audience files, silently. The folder's files say they were written from a version the
    restored database never published: the audience step refuses and says what to do."""
    copy = copy_run(december_run, tmp_path / "run")
    audience_files = tmp_path / "audiences"
    env = copy_environment(tmp_path, copy, audiences=audience_files)
    folder = copy.database.parent
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)  # version 1 only
    code, _, err = run_cli({**env, "ENGAGEMENT_MARGIN": "0.9"}, "--month", MONTH)  # version 2
    assert code == 0, err[-2000:]
    person = pl.read_csv(next(audience_files.rglob("*.csv")), infer_schema=False)["customer_id"][0]
    code, _, err = main_cli(env, "erase", "--customer-id", person)
    assert code == 0, err
    before = {p: p.read_bytes() for p in audience_files.rglob("*") if p.is_file()}

    shutil.rmtree(folder)
    shutil.copytree(backup, folder)  # the register too
    code, out, err = run_cli(env, "--month", MONTH)
    assert code != 0, out
    assert "were written from version 2, which" in err and "has no record of" in err, err
    # what to do in either case of the register (an upgrade review: it asked to put back a
    # register already there, and runs failed until the record was deleted)
    assert f"erased them again, delete {audience_files / '_written_from.json'} and run" in err
    assert "If the backup's register was restored with it, put today's back first" in err
    assert {p: p.read_bytes() for p in audience_files.rglob("*") if p.is_file()} == before


def test_an_erase_stopped_after_its_commit_is_finished_by_the_next_run(december_run, tmp_path):
    """A review killed `erase` after its commit, while it rewrote the history files: the next
    runs (and `retain`) left the analysts' file and the audience files holding the person, for
    good, and said nothing. The next run now finishes the request, the versions' files checked
    by their content."""
    from engagement_box.governance import erasure, readers

    copy = copy_run(december_run, tmp_path / "run")
    env = copy_environment(tmp_path, copy)
    audiences = copy.database.parent / "audiences"
    first = next(audiences.rglob("*.csv"))
    person = pl.read_csv(first, infer_schema=False)["customer_id"][0]
    working = readers.default_working(copy.database)
    con = duckdb.connect(str(working))
    try:
        erasure.erase(con, customer_id=person)  # committed; stopped before its files
        assert readers.unfinished_erasures(con)
    finally:
        con.close()

    def held() -> dict[str, bool]:
        reader = duckdb.connect(str(copy.database), read_only=True)
        try:
            in_file = reader.execute(
                "SELECT count(*) FROM history.customer WHERE customer_id = $id", {"id": person}
            ).fetchone()[0]
        finally:
            reader.close()
        text = "".join(p.read_text() for p in audiences.rglob("*.csv"))
        return {"published file": bool(in_file), "audience files": person in text}

    assert held() == {"published file": True, "audience files": True}
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert held() == {"published file": False, "audience files": False}
    # the persona model in force was fitted with the person's rows: fitted again without them
    (personas,) = [line for line in out.splitlines() if line.split()[:1] == ["customer_persona"]]
    assert personas.split()[-1] == "refit", out
    con = duckdb.connect(str(working), read_only=True)
    try:
        assert readers.unfinished_erasures(con) == []
    finally:
        con.close()
    code, out, _ = run_cli(env, "--month", MONTH)
    assert code == 0 and out.strip().splitlines()[-1].startswith("nothing to do"), out


def test_a_run_removes_and_names_what_a_stopped_compaction_left(december_run, tmp_path):
    """A killed `erase --compact` left its copy of the working database (gigabytes at scale)
    beside it, and every later run said nothing of a compaction that never happened."""
    from engagement_box.governance import readers

    copy = copy_run(december_run, tmp_path / "run")
    working = readers.default_working(copy.database)
    left = working.with_name(working.name + ".compacting")
    shutil.copy(working, left)
    code, out, err = run_cli(copy_environment(tmp_path, copy), "--month", MONTH)
    assert code == 0, err[-3000:]
    assert not left.exists()
    assert f"removed {left}: an `engagement-box erase --compact` was stopped before it" in out


def test_an_erase_stopped_where_a_lake_holds_versions_is_said_until_erased_again(
    december_run, tmp_path, monkeypatch
):
    """Where a Spark lake holds versions only `erase` rewrites them: a run cannot finish an
    erase stopped after its commit, so a run with nothing to do says to erase again."""
    import assets.publish
    from engagement_box.governance import erasure, readers

    copy = copy_run(december_run, tmp_path / "run")
    env = copy_environment(tmp_path, copy)
    working = readers.default_working(copy.database)
    con = duckdb.connect(str(working))
    try:
        erasure.erase(con, customer_id="C0000001")  # committed; stopped before its files
    finally:
        con.close()
    monkeypatch.setattr(assets.publish, "lake_holds_versions", lambda: True)
    code, _, err = run_cli(env, "--month", MONTH)  # the erasure changed the inputs: a run
    assert code == 0, err[-3000:]
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert (
        "warning: 1 erasure(s) stopped after their commit: the Spark lake's versions may still "
        "hold their person; run the same `engagement-box erase` again to finish"
    ) in out


def test_with_nothing_new_a_moved_warehouse_gets_a_published_file_that_reads_it(
    december_run, tmp_path
):
    """A warehouse folder moved elsewhere (ENGAGEMENT_WAREHOUSE pointed at the new place) kept
    a published file whose views read the old folder's Parquet files, and a run with nothing
    new said "nothing to do" and left it so: every query of the marts failed once the old
    folder was gone. The run now builds the file again and says why."""
    copy = copy_run(december_run, tmp_path / "run")
    moved = tmp_path / "moved"
    copy.database.parent.rename(moved)
    env = {
        **environment(tmp_path, copy.exports),
        "ENGAGEMENT_WAREHOUSE": str(moved / copy.database.name),
        "ENGAGEMENT_AUDIENCE_DIR": str(moved / "audiences"),
    }
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    *_, nothing, rebuilt = out.strip().splitlines()
    assert nothing.startswith("nothing to do: every export is staged as it is"), out
    assert rebuilt == (
        f"published file rebuilt: {moved / copy.database.name} was built where the warehouse "
        "was before (its views read the versions' files there)"
    )
    reader = duckdb.connect(str(moved / copy.database.name), read_only=True)
    try:
        assert reader.execute("SELECT count(*) FROM marts.customer").fetchone()[0] > 0
        (sql,) = reader.execute(
            "SELECT sql FROM duckdb_views() WHERE schema_name = 'marts' AND view_name = 'customer'"
        ).fetchone()
        assert str(moved) in sql
    finally:
        reader.close()
    code, out, err = run_cli(env, "--month", MONTH)  # now up to date: nothing at all
    assert code == 0 and out.strip().splitlines()[-1].startswith("nothing to do"), out


def second_version(run: PipelineRun) -> dict[str, object]:
    """Publish the run's December rows again as a new version (a rerun with other settings):
    version 2 becomes current and version 1 is one retention can expire. Returns version 1's
    row of marts.snapshots."""
    con = duckdb.connect(str(default_working(run.database)))
    try:
        (first,) = versions.snapshots(con)
        versions.publish(
            con,
            list(MARTS),
            run_id="rerun",
            partition_key=PARTITION,
            as_of=str(first["as_of"]),
            settings={"a rerun": "with other settings"},
            work_as_of=first["as_of"],
        )
    finally:
        con.close()
    return first


def test_retain_applies_the_policy_as_a_run_and_says_what_it_expired(december_run, tmp_path):
    """Retention by hand printed only Dagster's DEBUG lines; what it expired was in the
    asset's metadata. `engagement-box retain` runs the job as `run` runs the pipeline (one line
    per step, the run in DAGSTER_HOME) and says what it expired, what stays and why."""
    copy = copy_run(december_run, tmp_path / "run")
    first = second_version(copy)
    as_of = first["as_of"]
    env = {**environment(tmp_path, copy.exports), "ENGAGEMENT_WAREHOUSE": str(copy.database)}

    # A setting out of range: nothing ran (2). A run whose step fails: 1, with the step's cause.
    code, out, err = main_cli({**env, "ENGAGEMENT_KEEP_VERSIONS": "0"}, "retain")
    assert code == 2 and "run:" not in out, out
    assert err.startswith("FAILED before any step: ENGAGEMENT_KEEP_VERSIONS='0' is not valid")

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    with pytest.MonkeyPatch.context() as patch:  # the run executes in this process
        patch.setattr(versions, "apply_retention", full_disk)
        code, out, err = main_cli({**env, "ENGAGEMENT_KEEP_VERSIONS": "1"}, "retain")
    assert code == 1, out
    (failed,) = err.splitlines()
    assert failed.startswith(
        "FAILED maintenance__version_retention: No space left on device (full log: "
    ), failed
    assert "expired now" not in out

    # A pinned as-of no run can take yet stops monthly runs, not retention (it takes no as-of:
    # a re-review found it refused, so versions stopped expiring).
    future = {**env, "ENGAGEMENT_KEEP_VERSIONS": "1", "ENGAGEMENT_AS_OF": "2999-12-31"}
    code, out, err = main_cli(future, "retain")
    assert code == 0, err[-3000:]
    assert err == ""  # Dagster's DEBUG lines are in the log file
    run_id = re.search(r"^run:\s+(\S+)$", out, flags=re.M)[1]
    retention_line = step_lines(out)["maintenance__version_retention"]
    assert retention_line[1] == "ok"
    assert retention_line[4] == "1", retention_line  # rows: the versions kept, not all logged
    said = out.split(cli.StepLines.HEADER.strip(), 1)[1].splitlines()[2:]
    assert said[:3] == [
        f"expired now: version 1 (as of {as_of})",
        "versions kept: 1 (policy: keep the newest ENGAGEMENT_KEEP_VERSIONS=1, expire any "
        "older than ENGAGEMENT_KEEP_DAYS=400 days; the current version always stays)",
        f"current version: 2 (as of {as_of})",
    ]
    assert said[-1] == f"run {run_id} succeeded"
    with instance_at(env) as instance:  # in the Dagster instance: the UI shows it
        run = instance.get_run_by_id(run_id)
        assert run.job_name == "version_retention"
        assert run.status == dg.DagsterRunStatus.SUCCESS
    con = duckdb.connect(str(copy.database), read_only=True)  # the file analysts open
    try:
        kept = con.execute("SELECT snapshot_id FROM marts.snapshots WHERE expired_at IS NULL")
        assert kept.fetchall() == [(2,)]
    finally:
        con.close()

    # Nothing left to expire: said so, exit 0.
    code, out, _ = main_cli({**env, "ENGAGEMENT_KEEP_VERSIONS": "1"}, "retain")
    assert code == 0
    assert (
        "expired now: none (each version is within the policy, or is the current one)"
        in out.splitlines()
    )
    # Two days on, nothing else changed: the expired version's files go (they stayed on disk
    # until some later change rebuilt the published file), with a run that has nothing to do
    # as with retain; a file of another name in the folder (a file manager's copy) stays.
    history = copy.database.with_suffix(".history")
    code, out, err = main_cli(env, "run", "--month", MONTH)  # a version of these exports, 3
    assert code == 0 and "published version 3" in out, out + err
    code, out, err = main_cli({**env, "ENGAGEMENT_KEEP_VERSIONS": "1"}, "retain")
    assert code == 0 and "expired now: version 2" in out, out + err
    expired_files = sorted(history.glob("*/snapshot_[12].parquet"))
    assert expired_files
    stray = history / "customer" / "snapshot_3 (copy).parquet"
    shutil.copy(history / "customer" / "snapshot_3.parquet", stray)
    with duckdb.connect(str(default_working(copy.database))) as con:
        con.execute("UPDATE marts.snapshot_log SET expired_at = expired_at - INTERVAL 2 DAY")
    code, out, err = main_cli(env, "run", "--month", MONTH)
    assert code == 0 and "nothing to do" in out, out + err
    assert not any(path.exists() for path in expired_files)
    assert stray.exists() and sorted(history.glob("*/snapshot_3.parquet"))
    code, out, err = main_cli({**env, "ENGAGEMENT_KEEP_VERSIONS": "1"}, "retain")
    assert code == 0 and "version files deleted" not in out, out + err
    assert stray.exists()


def test_retain_says_how_many_version_files_it_deleted():
    def event(metadata: dict):
        materialization = SimpleNamespace(
            asset_key=dg.AssetKey(["maintenance", "version_retention"]),
            metadata={k: SimpleNamespace(value=v) for k, v in metadata.items()},
        )
        return SimpleNamespace(
            event_type_value="ASSET_MATERIALIZATION",
            event_specific_data=SimpleNamespace(materialization=materialization),
        )

    said = cli.retention_outcome([event({"versions_retained": 1, "history_files_deleted": 9})])
    assert (
        "version files deleted: 9 (of versions no longer retained: expired ones once sessions "
        "opened before they expired had a day to finish, and any the working database has no "
        "record of, such as a restored backup's abandoned ones)"
    ) in said
    assert not [
        line
        for line in cli.retention_outcome([event({"history_files_deleted": 0})])
        if "deleted" in line
    ]


def test_retain_with_no_warehouse_means_nothing_ran(tmp_path):
    env = environment(tmp_path, empty_exports(tmp_path))
    code, out, err = main_cli(env, "retain")
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith(
        f"FAILED before any step: no warehouse at {env['ENGAGEMENT_WAREHOUSE']} "
    ), line
    assert "run:" not in out and not (tmp_path / "warehouse").exists()


def test_retain_on_the_spark_engine_says_where_the_lake_is_retained(tmp_path):
    """With ENGAGEMENT_ENGINE=spark, `retain` ended in a traceback ("No remote job named
    version_retention"), or told the user to run `engagement-box run`, which refuses that
    engine."""
    env = {**environment(tmp_path, empty_exports(tmp_path)), "ENGAGEMENT_ENGINE": "spark"}
    code, out, err = main_cli(env, "retain")
    assert code == 2 and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("FAILED before any step: engagement-box retain applies the DuckDB ")
    assert "every Spark run applies the policy to the lake's versions as it ends" in line


def test_a_warehouse_or_audience_folder_that_cannot_be_written_means_nothing_ran(tmp_path):
    """The run lock cannot be created: nothing ran, so exit 2 (1 is for a run that failed)."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    exports = empty_exports(tmp_path)
    env = {**environment(tmp_path, exports), "ENGAGEMENT_WAREHOUSE": str(blocker / "e.duckdb")}
    code, out, err = run_cli(env)
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith(f"FAILED before any step: cannot create the run lock {blocker}")
    assert "run:" not in out

    # An audience folder that is a file failed the last step, after the version was published.
    env = {**environment(tmp_path, exports), "ENGAGEMENT_AUDIENCE_DIR": str(blocker)}
    code, out, err = run_cli(env)
    assert code == 2
    (line,) = err.splitlines()
    assert line == (
        f"FAILED before any step: the audience folder {blocker} cannot be written (it is a file, "
        "not a folder); point ENGAGEMENT_AUDIENCE_DIR at a folder this user can write (it is "
        "created when missing)"
    )
    assert "run:" not in out and not (tmp_path / "warehouse").exists()


@pytest.fixture
def erasable(tmp_path, monkeypatch) -> Path:
    """A published version of one work table (C1 twice, C2 once) and an audience file (C1, C2):
    the warehouse `engagement-box erase` works on. Returns the working database."""
    from engagement_box.governance import readers, versions

    layout = readers.Layout(tmp_path / "w" / "published.duckdb", tmp_path / "w" / "working.duckdb")
    layout.working.parent.mkdir()
    con = duckdb.connect(str(layout.working))
    try:
        con.execute("CREATE SCHEMA work")
        con.execute("CREATE TABLE work.scores (customer_id VARCHAR)")
        con.execute("INSERT INTO work.scores VALUES ('C1'), ('C1'), ('C2')")
        versions.publish(
            con, ["scores"], run_id="test", partition_key=None, as_of="2026-01-01", settings={}
        )
        readers.publish(con, layout)
    finally:
        con.close()
    audiences = tmp_path / "audiences"
    audiences.mkdir()
    (audiences / "rfm_segment").mkdir()
    (audiences / "rfm_segment" / "champions.csv").write_text(
        "customer_id,email\nC1,a@x.test\nC2,b@x.test\n"
    )
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(layout.published))
    monkeypatch.setenv("ENGAGEMENT_WORKING_DB", str(layout.working))
    monkeypatch.setenv("ENGAGEMENT_AUDIENCE_DIR", str(audiences))
    monkeypatch.setenv("ENGAGEMENT_LAKE_DIR", str(tmp_path / "lake"))
    return layout.working


REQUEST = r"request [0-9a-f]{32} at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: "


def erasure_log_rows(working: Path) -> int:
    con = duckdb.connect(str(working), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM staging.erasure_log").fetchone()[0]
    finally:
        con.close()


def test_an_erasure_under_a_path_read_as_a_pattern_is_refused_before_anything(
    erasable, tmp_path, monkeypatch, capsys
):
    """`engagement-box erase` did not check the paths the run refuses: under `aud[1]/` it
    logged the request, then crashed reading the audience files back and left the person in
    them; under `wh*/` it rebuilt a file that read a copy beside it (a re-review)."""
    monkeypatch.setenv("ENGAGEMENT_AUDIENCE_DIR", str(tmp_path / "aud[1]"))
    assert cli.main(["erase", "--customer-id", "C1"]) == 2
    said = capsys.readouterr().err
    assert "FAILED, nothing was erased" in said and "ENGAGEMENT_AUDIENCE_DIR" in said, said
    with duckdb.connect(str(erasable), read_only=True) as con:  # no request logged
        assert not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'erasure_log'"
        ).fetchone()[0]


def test_erasing_someone_no_row_matches_says_nothing_was_deleted(erasable, capsys):
    """An unknown person: exit 0 and the request logged (it keeps their rows out of exports
    read later), but the console says nothing matched instead of "person found: False" and a
    file rebuilt "without the person"."""
    assert cli.main(["erase", "--customer-id", "C9999999"]) == 0
    out = capsys.readouterr().out
    first, *rest = out.splitlines()
    assert re.fullmatch(
        REQUEST + r"no staged, published or audience row matched; nothing deleted\. The request "
        r"is logged: their rows stay out of exports read later\. It cannot be withdrawn: if "
        r"the id or email was mistyped, whoever is given it later is kept out too",
        first,
    ), first
    assert "without the person" not in out and "deleted" not in "".join(rest)
    # The file analysts open is built again (it records the requests), and says why (a review:
    # "published file rebuilt" alone read as if rows had changed).
    said = "published file rebuilt (it records the erasure requests; none of its rows held the "
    assert said + "person): " in out, out
    assert "engagement-box run" not in out  # nothing computed changed
    assert erasure_log_rows(erasable) == 1


@pytest.mark.parametrize(
    "stopped", ["waiting for the lock", "before its commit", "after its commit", "compacting"]
)
def test_an_erase_stopped_by_ctrl_c_says_whether_it_was_committed(
    erasable, capsys, monkeypatch, stopped
):
    """Ctrl-C in `erase` said "stopped before the run started; nothing was written" after the
    erasure had committed (or gave DuckDB's traceback and exit 1); it now says which, exit 130."""
    from engagement_box.governance import erasure, readers
    from pipelines import runs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    args = ["erase", "--customer-id", "C2"]
    if stopped == "waiting for the lock":
        monkeypatch.setattr(runs, "acquire_run_lock", interrupted)
    elif stopped == "before its commit":
        monkeypatch.setattr(erasure, "_delete", interrupted)
    elif stopped == "after its commit":  # while the versions' files are rewritten
        monkeypatch.setattr(readers, "publish", interrupted)
    else:
        monkeypatch.setattr(erasure, "compact", interrupted)
        args.append("--compact")
    assert cli.main(args) == 130
    said = capsys.readouterr().err.strip().splitlines()[-1]
    if stopped == "waiting for the lock":
        assert said == (
            "engagement-box erase: stopped (KeyboardInterrupt) before the erasure began: "
            "nothing was erased"
        )
    elif stopped == "compacting":
        assert said.startswith(
            "engagement-box erase: stopped (KeyboardInterrupt) while compacting: the erasure "
            "above is complete"
        )
        assert erasure_log_rows(erasable) == 1
    elif stopped == "before its commit":
        assert said == (
            "engagement-box erase: stopped (KeyboardInterrupt) before the erasure was "
            "committed: nothing was erased"
        )
        assert erasure_log_rows(erasable) == 0
    else:
        assert said.startswith(
            "engagement-box erase: stopped (KeyboardInterrupt) after the erasure was committed: "
            "the person is gone from the working database, but"
        )
        assert said.endswith("run the same command again to finish it")
        assert erasure_log_rows(erasable) == 1


def test_erasing_someone_says_erased_and_counts_in_plain_english(erasable, capsys):
    """A found person: "erased", then each count with "row" or "rows" as the number needs."""
    assert cli.main(["erase", "--customer-id", "C2"]) == 0
    out = capsys.readouterr().out
    first, *rest = out.splitlines()
    assert re.fullmatch(REQUEST + "erased", first), first
    assert re.search(r"^  work\.scores\s+1 row deleted$", out, flags=re.M), out
    assert re.search(r"^  rfm_segment/champions\.csv\s+1 audience row removed$", out, flags=re.M), (
        out
    )
    assert "published file rebuilt without the person: " in out

    assert cli.main(["erase", "--customer-id", "C1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  work\.scores\s+2 rows deleted$", out, flags=re.M), out
    assert erasure_log_rows(erasable) == 2


def test_an_erasure_in_a_warehouse_folder_that_cannot_be_written_exits_2(erasable, capsys):
    """`run` and `retain` said an unwritable warehouse folder with exit 2 (nothing ran), the
    erasure with exit 1, as if it had failed half-way."""
    published = Path(os.environ["ENGAGEMENT_WAREHOUSE"])
    (published.parent / f".{published.name}.write-check").mkdir()  # no file can be made there
    assert cli.main(["erase", "--customer-id", "C1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("engagement-box erase: FAILED, nothing was erased: the warehouse folder")
    assert "cannot be written" in err
    con = duckdb.connect(str(erasable), read_only=True)
    try:  # nothing was written: no erasure log was even created
        assert con.execute("SELECT count(*) FROM work.scores").fetchone() == (3,)
        assert not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'erasure_log'"
        ).fetchone()[0]
    finally:
        con.close()


def test_erasing_with_another_salt_than_the_logged_erasures_is_a_bad_setting(erasable, capsys):
    """ENGAGEMENT_ERASURE_SALT changed after an erasure made `erase` end in a traceback
    (`ErasureError: 1 salt(s) other than the current one...`) with exit 1, as if it had failed:
    a bad setting is one plain line naming it, exit 2 (README "Exit codes"), nothing written."""
    assert cli.main(["erase", "--customer-id", "C1"]) == 0  # with the warehouse's own salt
    capsys.readouterr()
    files = sorted(
        p
        for p in [
            *erasable.parent.rglob("*"),
            *Path(os.environ["ENGAGEMENT_AUDIENCE_DIR"]).rglob("*"),
        ]
        if p.is_file() and not p.name.endswith(".lock")
    )
    before = {p: p.read_bytes() for p in files}

    code, out, err = main_cli(
        {"ENGAGEMENT_ERASURE_SALT": "another"}, "erase", "--customer-id", "C2"
    )
    assert code == 2
    assert (
        err.startswith("engagement-box erase: FAILED, nothing was erased: ")
        and err.count("\n") == 1
    ), err
    assert "ENGAGEMENT_ERASURE_SALT" in err and "Traceback" not in err and out == "", err
    assert {p: p.read_bytes() for p in files} == before  # nothing written, C2 still there
    assert erasure_log_rows(erasable) == 1


def test_a_run_with_another_salt_than_the_logged_erasures_stops_before_any_step(
    erasable, tmp_path, capsys
):
    """`run` with ENGAGEMENT_ERASURE_SALT changed after an erasure started a Dagster run whose
    staging step failed on the salt (exit 1, the step's traceback in the run's log): a bad
    setting, said in one line before any step, exit 2, as `erase` says it."""
    assert cli.main(["erase", "--customer-id", "C1"]) == 0
    capsys.readouterr()
    home = tmp_path / "dagster"
    code, out, err = main_cli(
        {"ENGAGEMENT_ERASURE_SALT": "another", "DAGSTER_HOME": str(home)}, "run"
    )
    assert code == 2, (out, err)
    assert err.startswith("FAILED before any step: ") and err.count("\n") == 1, err
    assert "ENGAGEMENT_ERASURE_SALT" in err and "Traceback" not in err, err
    assert "staging__" not in out  # no step ran
    assert not (home / "history" / "runs").exists() or not any(
        (home / "history" / "runs").iterdir()
    )  # no Dagster run was created
    # retention hashes nothing: the salt is no reason to refuse it
    code, out, err = main_cli(
        {"ENGAGEMENT_ERASURE_SALT": "another", "DAGSTER_HOME": str(home)}, "retain"
    )
    assert code == 0, (out, err)


def test_a_pinned_as_of_is_said_beside_the_month(tmp_path, monkeypatch, capsys):
    """With ENGAGEMENT_AS_OF set, `run --month 2025-08` said "as-of month: 2025-08" and
    published "as of 2026-03-31": the header now says the date is pinned."""
    monkeypatch.setenv("ENGAGEMENT_AS_OF", "2026-03-31")
    monkeypatch.setenv("ENGAGEMENT_DATA_DIR", str(tmp_path / "no_exports"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(tmp_path / "w" / "e.duckdb"))
    assert cli.main(["run", "--month", "2025-08"]) == 2  # no exports there: nothing runs
    out = capsys.readouterr().out
    assert "as-of month: 2025-08 (partition key 2025-08-01)\n" in out
    assert "as-of date:  2026-03-31, pinned by ENGAGEMENT_AS_OF for every month\n" in out


def test_erasing_where_there_is_no_warehouse_is_refused_not_logged_elsewhere(
    tmp_path, monkeypatch, capsys
):
    """A mistyped ENGAGEMENT_WAREHOUSE made erase create an empty warehouse, log the request
    there and exit 0, while the real warehouse kept the person. Now nothing is created."""
    missing = tmp_path / "typo" / "engagement.duckdb"
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(missing))
    monkeypatch.setenv("ENGAGEMENT_LAKE_DIR", str(tmp_path / "lake"))
    assert cli.main(["erase", "--customer-id", "C2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"engagement-box erase: FAILED, nothing was erased: no warehouse at {missing}"
    )
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--customer-id", ""), ("--customer-id", "  "), ("--email", ""), ("--email", " \t")],
)
def test_erasing_an_empty_key_is_a_usage_error(tmp_path, monkeypatch, capsys, option, value):
    """An empty id or email is refused as argparse refuses a bad option (exit 2, one plain line,
    no traceback), before any file is touched."""
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(tmp_path / "w" / "published.duckdb"))
    monkeypatch.setenv("ENGAGEMENT_LAKE_DIR", str(tmp_path / "lake"))
    with pytest.raises(SystemExit) as stopped:
        cli.main(["erase", option, value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"engagement-box erase: error: {option} is empty: give the "
        f"{'customer id' if option == '--customer-id' else 'email'} of the person to erase"
    )
    assert "Traceback" not in err and not (tmp_path / "w").exists()


def publish_events(
    snapshot_id: int, published: bool, current: bool = True, replaced: int = 0
) -> list:
    """The published_marts step's events as the console reads them: one materialization per
    mart (assets/publish.py's metadata), then its success. `replaced`: the current version the
    published one replaced with an earlier as-of (0: none)."""
    from types import SimpleNamespace

    def materialized(mart: str) -> SimpleNamespace:
        metadata = {
            "dagster/row_count": dg.MetadataValue.int(10),
            "snapshot_id": dg.MetadataValue.int(snapshot_id),
            "published_new_version": dg.MetadataValue.bool(published),
            "is_current": dg.MetadataValue.bool(current),
            "replaced_current_version": dg.MetadataValue.int(replaced),
            "replaced_current_as_of": dg.MetadataValue.text("2026-07-03" if replaced else ""),
            "as_of": dg.MetadataValue.text("2026-06-30"),
        }
        return SimpleNamespace(
            event_type_value="ASSET_MATERIALIZATION",
            step_key="published_marts",
            event_specific_data=SimpleNamespace(materialization=SimpleNamespace(metadata=metadata)),
        )

    done = SimpleNamespace(
        event_type_value="STEP_SUCCESS",
        step_key="published_marts",
        event_specific_data=SimpleNamespace(duration_ms=100.0),
    )
    return [materialized(mart) for mart in MARTS] + [done]


@pytest.mark.parametrize(
    ("snapshot_id", "published", "current", "replaced", "said"),
    [
        (2, True, True, 0, "published version 2 (as of 2026-06-30)"),
        (
            1,
            False,
            True,
            0,
            "published nothing: the inputs equal those of version 1 (as of 2026-06-30), "
            "which stays",
        ),
        (
            3,
            True,
            False,
            0,
            "published version 3 (as of 2026-06-30); it is not the current version: one with a "
            "later as-of stays current",
        ),
        # the data moved back (a re-sent export cancelled the newest day's orders): a review
        # saw only "published version 4 (as of 2026-06-30)" the day after version 3's 07-03
        (
            4,
            True,
            True,
            3,
            "published version 4 (as of 2026-06-30); it replaces version 3 (as of 2026-07-03) "
            "as the current one: the data moved back (its as-of is earlier)",
        ),
    ],
)
def test_the_console_says_which_version_the_run_published(
    snapshot_id, published, current, replaced, said
):
    """`--force` with unchanged inputs printed "published_marts ok" and "succeeded" although
    nothing was published: the console now says what the publish did, from its metadata."""
    out = io.StringIO()
    steps = cli.StepLines(out=out)
    for event in publish_events(snapshot_id, published, current, replaced):
        steps(event)
    assert steps.publish_outcome() == said
    # The step's own line keeps the format a benchmark parses.
    line = out.getvalue().splitlines()[0]
    assert re.match(r"^  (\S+)\s+(ok|FAILED)\s+([0-9.]+)(?:\s+([0-9.]+))?", line)
    assert cli.StepLines(out=io.StringIO()).publish_outcome() is None  # no publish step ran


def test_every_name_a_benchmark_imports_from_the_project_exists():
    """`bench_versions.py --daily-runs` failed on an import of a setting renamed away
    (SAMPLE_DATA_DIR): the benchmarks import their project names lazily, inside the function
    that runs, so nothing else notices."""
    import ast
    import importlib

    missing = []
    for script in sorted((REPO / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            if node.module.split(".")[0] not in ("engagement_box", "pipelines", "assets"):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    continue
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ModuleNotFoundError:
                    missing.append(f"{script.name}: from {node.module} import {alias.name}")
    assert missing == []


def test_a_wide_exports_ignored_columns_are_named_ten_then_counted():
    """An orders export with 3,000 columns the contract does not know made one warning line of
    20,000 characters naming each."""
    from engagement_box.staging.messages import ignored_columns_message

    said = ignored_columns_message("orders", "orders/wide.csv", [f"x{i}" for i in range(3000)])
    assert said.startswith(
        "orders/wide.csv: column(s) x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, ... (3,000 in all) "
        "ignored: not columns of orders"
    ), said
    assert len(said) < 250


def test_a_run_killed_while_publishing_leaves_no_published_file_behind_the_audiences(
    december_run, tmp_path
):
    """A run killed after its publish committed, before the analysts' file was rebuilt, left
    the audience files and that file behind: the next run wrote the audiences alone ("nothing
    new to compute ... audience_files"), said it succeeded, and the analysts' file stayed a
    version behind the audiences marketing read. Here: no published file, audiences elsewhere."""
    copy = copy_run(december_run, tmp_path / "run")
    copy.database.unlink()
    elsewhere = tmp_path / "new_audiences"
    env = copy_environment(tmp_path, copy, elsewhere)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert "nothing new to compute: version 1 stands" in out, out
    assert f"published file rebuilt: {copy.database}" in out, out
    assert json.loads((elsewhere / "_written_from.json").read_text())["snapshot_id"] == 1
    reader = duckdb.connect(str(copy.database), read_only=True)
    try:
        assert reader.execute("SELECT snapshot_id FROM marts.current_version").fetchone() == (1,)
    finally:
        reader.close()


def test_audience_files_deleted_from_the_shared_folder_are_written_again(december_run, tmp_path):
    """A segment file and a whole kind's folder deleted from the audience folder (a folder
    marketing shares): the next run said "nothing to do" and left it so, while its record
    still named the version. The run now writes them again from the current version."""
    copy = copy_run(december_run, tmp_path / "run")
    folder = copy.database.parent / "audiences"
    written = json.loads((folder / "_written_from.json").read_text())["files"]
    segment = next(name for name in written if name.startswith("rfm_segment/"))
    (folder / segment).unlink()
    shutil.rmtree(folder / "quadrant")
    env = copy_environment(tmp_path, copy)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert "nothing new to compute: version 1 stands for this run's as-of, but " in out, out
    assert f"audience file(s) of version 1 are missing from {folder}" in out, out
    assert (folder / segment).is_file() and (folder / "quadrant").is_dir()
    again = json.loads((folder / "_written_from.json").read_text())
    assert again["snapshot_id"] == 1 and again["files"] == written
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0 and "nothing to do" in out, out


def test_a_month_near_the_start_of_the_orders_says_there_are_too_few_buyers(tmp_path):
    """An operator's `--month` of the data's first month failed with advice about outliers and
    currency rates: the fits failed because 16 customers had bought by then."""
    env = environment(tmp_path, REPO / "data" / "sample")
    code, out, err = run_cli(env, "--month", "2023-07")
    assert code == 1
    (said,) = [line for line in err.splitlines() if line.startswith("FAILED check fits_converged")]
    assert (
        "only 16 customers have a completed order by 2023-07-31, 4 of them with a repeat " in said
    )
    assert "run a later month" in said


def test_too_few_buyers_in_the_last_month_of_the_orders_are_not_sent_to_a_later_month(tmp_path):
    """A small retailer's whole history failed with "run a later month", though no later month
    holds another order (a review): the advice is the exports', said so."""
    exports = tmp_path / "exports"
    shutil.copytree(REPO / "data" / "sample", exports)
    for file in (exports / "orders").iterdir():
        if file.name != "orders_2023-07.csv":
            file.unlink()
    env = environment(tmp_path, exports)
    code, out, err = run_cli(env, "--month", "2023-08")
    assert code == 1
    (said,) = [line for line in err.splitlines() if line.startswith("FAILED check fits_converged")]
    assert "only 16 customers have a completed order by 2023-07-" in said, said
    assert "no completed order is staged after 2023-07-" in said, said
    assert "so no later month has more: the models need the orders of more customers" in said
    assert "run a later month" not in said


def test_a_failure_is_said_as_the_steps_own_error_not_the_one_it_was_raised_from():
    """A step's error raised from numpy's (`ModelFitError` from `LinAlgError`) was said as
    "Matrix is not positive definite": the cause chain was followed to its end, past the message
    written for the user. Dagster's wrappers are still unwrapped."""
    from dagster._utils.error import serializable_error_info_from_exc_info

    from engagement_box.value.fitting import ModelFitError

    try:
        try:
            try:
                raise ValueError("Matrix is not positive definite")
            except ValueError as numpy_error:
                raise ModelFitError(
                    "bgnbd", "degenerate", "the likelihood is flat"
                ) from numpy_error
        except ModelFitError as step_error:
            raise dg.DagsterExecutionStepExecutionError(
                "Error occurred while executing op",
                user_exception=step_error,
                original_exc_info=sys.exc_info(),
                step_key="s",
                op_name="s",
                op_def_name="s",
            ) from step_error
    except dg.DagsterExecutionStepExecutionError:
        error = serializable_error_info_from_exc_info(sys.exc_info())
    event = SimpleNamespace(
        is_failure=True,
        event_type_value="STEP_FAILURE",
        step_key="work__customer_value",
        event_specific_data=SimpleNamespace(error=error),
    )
    assert cli.root_causes([event]) == [
        "work__customer_value: bgnbd: the likelihood is flat (reason=degenerate, data={})"
    ]


def test_a_fit_with_a_flat_likelihood_fails_its_check_saying_the_history_is_short(tmp_path):
    """One month of a shop's orders with a 14-day holdout: BG/NBD stopped near a boundary
    (a = 6e-6, b = 6180) as converged, the check passed, and customer_value failed with numpy's
    "Matrix is not positive definite" (a review). The check fails now, naming the flat
    likelihood and the 30 days of orders."""
    exports = tmp_path / "exports"
    assert generator.main(["--out", str(exports), "--customers", "2000", "--seed", "11"]) == 0
    orders = pl.concat(
        [
            pl.read_csv(f, infer_schema_length=0)
            if f.suffix == ".csv"
            else pl.read_parquet(f).select(pl.all().cast(pl.String))
            for f in sorted((exports / "orders").iterdir())
        ],
        how="diagonal",
    ).filter(pl.col("ordered_at").str.starts_with("2026-03"))
    shutil.rmtree(exports / "orders")
    (exports / "orders").mkdir()
    orders.write_csv(exports / "orders" / "orders.csv")
    env = {**environment(tmp_path, exports), "ENGAGEMENT_HOLDOUT_DAYS": "14"}
    code, out, err = run_cli(env)
    assert code == 1, out + err
    (said,) = [line for line in err.splitlines() if line.startswith("FAILED check fits_converged")]
    assert "bgnbd (full window): the likelihood is flat in some direction" in said, said
    assert "The orders of the window span only 30 days (2026-03-01 to the as-of 2026-03-31)" in said
    assert "not positive definite" not in err and "work__customer_value " not in out


def test_too_few_buyers_by_a_pinned_as_of_are_sent_to_the_pin_not_a_later_month(tmp_path):
    """ENGAGEMENT_AS_OF pins every month's as-of: "run a later month" repeated the same
    failure (a re-review)."""
    env = {**environment(tmp_path, REPO / "data" / "sample"), "ENGAGEMENT_AS_OF": "2023-08-31"}
    code, out, err = run_cli(env, "--month", "2023-08")
    assert code == 1
    (said,) = [line for line in err.splitlines() if line.startswith("FAILED check fits_converged")]
    assert (
        "(ENGAGEMENT_AS_OF=2023-08-31 pins every month's as-of: set it later, or unset it)" in said
    ), said
    assert "run a later month" not in said, said


def test_the_command_exits_with_mains_code_and_loses_no_output_or_exit_work(tmp_path):
    """`engagement-box` leaves without the interpreter's teardown (a measured 1.3 CPU-s of a
    day): what a command printed without a newline, an exit handler's work and a thread still
    writing must all be there, with main's exit code."""
    written = tmp_path / "thread.txt"
    script = (
        "import atexit, threading, time\n"
        "from engagement_box import cli\n"
        "atexit.register(print, ' and the exit handler ran')\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        f"    open({str(written)!r}, 'w').write('done')\n"
        "def fake_main():\n"
        "    threading.Thread(target=late).start()\n"
        "    print('the command printed', end='')\n"
        "    return 3\n"
        "cli.main = fake_main\n"
        "cli.entry()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "the command printed and the exit handler ran\n"
    assert written.read_text() == "done"


@pytest.mark.parametrize("console", ["a reader that leaves", "closed"])
def test_the_command_finishes_with_its_code_when_its_console_is_gone(tmp_path, console):
    """`engagement-box run | head -4` stopped at the first line after the reader left
    (BrokenPipeError, after the run was created: Dagster showed it NOT_STARTED for ever), and
    with stdout closed (`>&-`) the exit failed on `None.flush()`: exit 1 for a good run."""
    done = tmp_path / "done.txt"
    script = (
        "from engagement_box import cli\n"
        "def fake_main():\n"
        "    for i in range(20000):\n"
        "        print('step', i)\n"
        f"    open({str(done)!r}, 'w').write('done')\n"
        "    return 3\n"
        "cli.main = fake_main\n"
        "cli.entry()\n"
    )
    command = [sys.executable, "-c", script]
    if console == "closed":
        # What Python makes of a console closed at start (`>&-`): no descriptor 1, and
        # `sys.stdout` None. Closed here rather than by the shell, because a process started
        # without descriptor 1 hands it to whatever the loader opens first (under libfaketime,
        # its shared clock, which the prints then overwrote for every later process).
        closing = "import os, sys\nos.close(1)\nsys.stdout = None\n"
        finished = subprocess.run(
            [sys.executable, "-c", closing + script], capture_output=True, timeout=60
        )
        code = finished.returncode
        assert finished.stderr == b"", finished.stderr
    else:
        process = subprocess.Popen(command, stdout=subprocess.PIPE)
        assert process.stdout.readline() == b"step 0\n"
        process.stdout.close()  # as `head -1` does
        code = process.wait(timeout=60)
    assert code == 3
    assert done.read_text() == "done"


def test_erasing_with_a_stray_working_database_is_refused(erasable, tmp_path, monkeypatch, capsys):
    """`ENGAGEMENT_WORKING_DB` set to another file: the erase logged the request in a new,
    empty database, said "erased" and left the person in the analysts' file and the real
    warehouse (a re-review). Refused before anything is written, naming the one to use."""
    stray = tmp_path / "w" / "stray.duckdb"
    monkeypatch.setenv("ENGAGEMENT_WORKING_DB", str(stray))
    code = cli.main(["erase", "--customer-id", "C1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("engagement-box erase: FAILED, nothing was erased: "), err
    assert f"Set ENGAGEMENT_WORKING_DB to {erasable}" in err
    assert not stray.exists()
    with duckdb.connect(str(erasable), read_only=True) as con:  # nothing erased there either
        assert con.execute("SELECT count(*) FROM work.scores").fetchone() == (3,)


def test_an_erasure_by_a_shared_email_is_refused_until_said_shared(erasable, capsys, monkeypatch):
    """An email on more profiles than ENGAGEMENT_MAX_PROFILES_PER_KEY names no one person: the
    erase is refused as a bad request (exit 2, nothing written, the profiles named) unless
    --shared says they are all the person's."""
    monkeypatch.setenv("ENGAGEMENT_MAX_PROFILES_PER_KEY", "1")
    con = duckdb.connect(str(erasable))
    try:
        ingestion.ensure_staging(con)
        ingestion.create_staged_table(con, SOURCES["customers"])
        con.execute(
            "INSERT INTO staging.customers VALUES "
            "('C1', 'family@x.test', NULL, '2024-01-01', false, true, 'US', 'c.csv', 1), "
            "('C2', 'Family@x.test', NULL, '2024-01-02', false, true, 'US', 'c.csv', 2)"
        )
    finally:
        con.close()
    assert cli.main(["erase", "--email", "family@x.test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "engagement-box erase: FAILED, nothing was erased: the email family@x.test is on 2 "
        "customer profiles (more than ENGAGEMENT_MAX_PROFILES_PER_KEY, 1)"
    ), err
    assert "(C1, C2)" in err and "add --shared if every one of these profiles is theirs" in err
    assert erasure_log_rows(erasable) == 0

    assert cli.main(["erase", "--email", "family@x.test", "--shared"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  work\.scores\s+3 rows deleted$", out, flags=re.M), out
    assert erasure_log_rows(erasable) == 1


def test_an_erasure_by_email_says_nothing_of_a_spark_lake_that_holds_no_version(erasable, capsys):
    """An empty ENGAGEMENT_LAKE_DIR (no Spark run ever) made every erase by email say the
    Spark lake's tables were deleted by an earlier erasure and ask to erase again by id."""
    Path(os.environ["ENGAGEMENT_LAKE_DIR"]).mkdir()
    assert cli.main(["erase", "--email", "a@x.test"]) == 0
    out = capsys.readouterr().out
    assert "Spark lake" not in out, out
    assert re.search(r"^  rfm_segment/champions\.csv\s+1 audience row removed$", out, flags=re.M)


def test_the_spark_command_given_says_a_relative_dagster_home_in_env_must_change(
    tmp_path, monkeypatch, capsys
):
    """A `.env` with DAGSTER_HOME=.dagster (`.env.example` had it uncommented before 2026-12-06): Dagster's commands read it
    over the command line's absolute value and refuse it, so the command given, run as printed,
    failed (a re-review). The advice says to make it absolute there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DAGSTER_HOME=.dagster\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    said = cli._spark_run_advice()
    assert f"after setting DAGSTER_HOME={tmp_path / '.dagster'} in {tmp_path / '.env'}" in said


def test_dagsters_storage_failing_is_one_line_naming_its_folder(tmp_path, monkeypatch):
    """A full DAGSTER_HOME ended a run in a 78-line SQLAlchemy traceback that named no folder
    and no version (a disk-full review)."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    def full(args):
        raise OperationalError(
            'PRAGMA main.table_xinfo("runs")', {}, sqlite3.OperationalError("disk I/O error")
        )

    monkeypatch.setattr(cli, "retain", full)
    code, out, err = main_cli({"DAGSTER_HOME": str(tmp_path / "home")}, "retain")
    assert code == 1 and "Traceback" not in err
    assert err.startswith(
        f"engagement-box retain: FAILED: Dagster's run storage under {tmp_path / 'home'} could "
        "not be read or written (disk I/O error). If its disk is full, free space there"
    ), err


def test_an_erase_on_a_full_disk_says_so_in_one_line(december_run, tmp_path, monkeypatch):
    """A disk-full review: `erase` ended in a 30-line traceback that did not say whether the
    request was logged, nor that the same erase again finishes it."""
    from engagement_box.governance import erasure

    copy = copy_run(december_run, tmp_path / "run")

    def full(con, **request):
        raise duckdb.IOException('Could not write file "w.working.duckdb": No space left on device')

    monkeypatch.setattr(erasure, "erase", full)
    code, _, err = main_cli(copy_environment(tmp_path, copy), "erase", "--customer-id", "C1")
    assert code == 1 and "Traceback" not in err
    assert err.startswith("engagement-box erase: FAILED: ") and "No space left on device" in err
    assert "run the same erase again" in err, err
