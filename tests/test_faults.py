"""Configuration and file faults fail at once, in one plain sentence on the console."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from engagement_box import cli
from engagement_box.governance.readers import default_working
from engagement_box.staging.contracts import SOURCES
from pipelines.resources import ExportsResource, Warehouse, WarehouseError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, Path]:
    """Settings for a CLI run in tmp_path: empty source folders, the real Dagster config."""
    exports = tmp_path / "exports"
    for source in SOURCES:
        (exports / source).mkdir(parents=True)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    paths = {
        "ENGAGEMENT_DATA_DIR": exports,
        "ENGAGEMENT_WAREHOUSE": tmp_path / "warehouse" / "w.duckdb",
        "ENGAGEMENT_AUDIENCE_DIR": tmp_path / "audiences",
        "DAGSTER_HOME": home,
    }
    for name, path in paths.items():
        monkeypatch.setenv(name, str(path))
    return paths


def first_cause(result) -> str | None:
    """The first failure of a run, as the CLI tells it (`cli.root_causes`)."""
    causes = cli.root_causes(result)
    return causes[0] if causes else None


def failed_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("FAILED")]


def test_a_missing_export_folder_fails_before_any_step_naming_it(env, capsys):
    missing = env["ENGAGEMENT_DATA_DIR"].parent / "no_such_folder"
    os.environ["ENGAGEMENT_DATA_DIR"] = str(missing)
    assert cli.main(["run", "--month", "2025-12"]) == 2
    (line,) = failed_lines(capsys.readouterr().err)
    assert str(missing) in line and "does not exist" in line
    assert not env["ENGAGEMENT_WAREHOUSE"].exists()


def test_a_missing_source_folder_fails_before_any_step_naming_it(env, capsys):
    shutil.rmtree(env["ENGAGEMENT_DATA_DIR"] / "reviews")
    assert cli.main(["run", "--month", "2025-12"]) == 2
    (line,) = failed_lines(capsys.readouterr().err)
    assert str(env["ENGAGEMENT_DATA_DIR"] / "reviews") in line
    assert not env["ENGAGEMENT_WAREHOUSE"].exists()


def test_a_run_launched_without_the_cli_also_stops_before_any_step(env):
    """Runs from the UI, a schedule or the sensor do not go through the CLI's check."""
    from pipelines.definitions import defs

    missing = env["ENGAGEMENT_DATA_DIR"] / "nope"
    os.environ["ENGAGEMENT_DATA_DIR"] = str(missing)
    assert "does not exist" in ExportsResource().problem()
    # a tick's resources (no run) do not raise: the sensor and schedule skip, saying the problem
    ExportsResource().setup_for_execution(dg.build_init_resource_context())
    result = defs.resolve_job_def("engagement_pipeline").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key="2025-12-01", raise_on_error=False
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    cause = first_cause(result)
    assert str(missing) in cause and "does not exist" in cause
    assert (
        not env["ENGAGEMENT_WAREHOUSE"].exists()
        or not duckdb.connect(str(env["ENGAGEMENT_WAREHOUSE"]), read_only=True)
        .execute("SELECT count(*) FROM duckdb_tables()")
        .fetchone()[0]
    )


@pytest.mark.parametrize(
    ("resource", "config", "said"),
    [
        ("model_settings", {"margin": 30.0}, "ModelSettings.margin = 30.0: ENGAGEMENT_MARGIN"),
        ("model_settings", {"currency": "usdd"}, "a three-letter currency code"),
        ("engagement_config", {"civ_beta": 1.5}, "EngagementConfig.civ_beta = 1.5"),
        # the checks that compare two settings, with the config's values (a re-review: the
        # as-of ran eight steps first, the rate was published)
        ("model_settings", {"as_of": "2099-01-01"}, "ENGAGEMENT_AS_OF=2099-01-01 is after"),
        ("model_settings", {"fx_rates_json": '{"USD": 2}'}, "a rate for USD, the reporting"),
    ],
)
def test_a_value_given_in_the_runs_config_is_refused_as_its_setting_is(env, resource, config, said):
    """The launchpad's config (or a value given in code) skipped the settings' ranges: a margin
    of 30 published 30 times the CLV, where ENGAGEMENT_MARGIN=30 is refused (a re-review).
    Refused before any step, in the setting's words."""
    from pipelines.definitions import defs

    for source in SOURCES:  # a run that would go ahead otherwise
        shutil.copytree(
            REPO / "data" / "sample" / source,
            env["ENGAGEMENT_DATA_DIR"] / source,
            dirs_exist_ok=True,
        )
    result = defs.resolve_job_def("engagement_pipeline").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        partition_key="2025-12-01",
        run_config={"resources": {resource: {"config": config}}},
        raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert said in first_cause(result), first_cause(result)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_warehouse_fails_at_once_saying_what_to_do(tmp_path, damage):
    published = tmp_path / "w.duckdb"
    database = default_working(published)  # the file steps open
    con = duckdb.connect(str(database))
    con.execute("CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(200000)")
    con.close()
    if damage == "garbage":
        database.write_bytes(b"not a database" * 1000)
    else:
        os.truncate(database, database.stat().st_size // 3)
    warehouse = Warehouse(database=str(published), lock_timeout_seconds=60)
    started = time.monotonic()
    with pytest.raises(WarehouseError) as raised, warehouse.get_connection():
        pass
    assert time.monotonic() - started < 5  # not retried as if it were a lock wait
    message = str(raised.value)
    assert "is damaged" in message and str(database) in message
    assert "restore it" in message and "ENGAGEMENT_WORKING_DB" in message


def test_an_erase_on_a_damaged_working_database_is_refused_in_words(env, capsys):
    """`engagement-box erase` on a truncated working database printed a traceback (a
    re-review); it is refused, saying where the person still is."""
    published = env["ENGAGEMENT_WAREHOUSE"]
    published.parent.mkdir()
    database = default_working(published)
    con = duckdb.connect(str(database))
    con.execute("CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(200000)")
    con.close()
    os.truncate(database, database.stat().st_size // 3)
    assert cli.main(["erase", "--customer-id", "C1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(
        f"engagement-box erase: FAILED, nothing was erased: the working database "
        f"{database} is damaged"
    ), err
    assert f"the person stays in the published file {published}" in err
    assert database.exists()  # not deleted as one the erase created


def test_a_lock_held_by_another_process_is_still_waited_for_then_named(tmp_path, capsys):
    """Someone who opens the working database by hand (analysts open the published file). The
    run said nothing while it waited, and its error passed on DuckDB's advice to open the file
    read-only, which misleads when the holder is a read-only session."""
    published = tmp_path / "w.duckdb"
    database = default_working(published)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(60)",
            str(database),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        warehouse = Warehouse(database=str(published), lock_timeout_seconds=1.5)
        started = time.monotonic()
        with pytest.raises(WarehouseError, match="in use by another process") as raised:
            with warehouse.get_connection():
                pass
        assert time.monotonic() - started >= 0.5  # it waited (backing off: 0.1, 0.2, 0.4 s)
        assert f"PID {holder.pid}" in str(raised.value)
        assert "read-only mode" not in str(raised.value)
        said = capsys.readouterr().err
        assert said.count("waiting for the working database") == 1, said
        assert f"PID {holder.pid}" in said
    finally:
        holder.kill()
        holder.wait()


def test_the_cli_prints_the_cause_of_a_failed_run_in_one_sentence(env, capsys):
    """A warehouse folder that cannot be created (here: a file is in the way; a read-only folder
    fails the same way) ends with the cause, not "Execution of run ... failed"."""
    blocker = env["ENGAGEMENT_WAREHOUSE"].parent
    blocker.write_text("a file where the warehouse folder should be")
    assert cli.main(["run", "--month", "2025-12"]) == 2  # nothing ran
    err = capsys.readouterr().err
    (line,) = failed_lines(err)
    assert "Execution of run" not in line
    assert f"cannot create the run lock {env['ENGAGEMENT_WAREHOUSE']}.run.lock" in line
    assert "must be writable" in line


def test_the_cli_names_a_damaged_warehouse_in_one_sentence(env, capsys):
    """With no working database, a run starts by adopting the warehouse file (one from before
    the working database). A damaged one cost 56 s per step; then it created a run whose 20
    steps did not run, exit 1. It is now one line before any run, exit 2, the file untouched."""
    env["ENGAGEMENT_WAREHOUSE"].parent.mkdir()
    env["ENGAGEMENT_WAREHOUSE"].write_bytes(b"not a database" * 1000)
    started = time.monotonic()
    assert cli.main(["run", "--month", "2025-12"]) == 2
    assert time.monotonic() - started < 60
    out, err = capsys.readouterr()
    (line,) = failed_lines(err)
    assert line.startswith(
        f"FAILED before any step: the warehouse file {env['ENGAGEMENT_WAREHOUSE']} is damaged"
    ), line
    assert "run:" not in out  # no run was created
    assert env["ENGAGEMENT_WAREHOUSE"].read_bytes() == b"not a database" * 1000


def test_runs_starting_together_on_a_new_dagster_home_all_open_it(tmp_path):
    """Three processes open a new instance at once: without the CLI's lock some crashed creating
    Dagster's storage ("table runs already exists", "UNIQUE constraint failed")."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    code = (
        "import sys; from engagement_box.cli import open_instance; "
        "open_instance(sys.argv[1]).get_runs(limit=1)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(home)],
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0, 0], [err[-1500:] for _, err in results]


def test_a_value_given_in_the_runs_config_is_read_as_its_setting_is():
    """The launchpad's " usd " or a cleared as-of passed the check and broke the run halfway
    ("no FX rate into  USD ", a raw "Invalid isoformat string: ''"): a given value is read as its
    environment variable is, trimmed, its case folded, empty meaning the default (a re-review)."""
    from pipelines.resources import EngagementConfig, ModelSettings

    model = ModelSettings(currency=" usd ", as_of="", margin=1, holdout_days=90.0).resolved()
    assert (model.currency, model.as_of, model.as_of_pinned) == ("USD", None, False)
    assert (model.margin, model.holdout_days) == (1.0, 90)
    config = EngagementConfig(social_points_json=' {"like": 2} ', civ_beta=0.25)
    assert config.setting("social_points_json") == {"like": 2.0}
    assert config.setting("civ_beta") == 0.25 and config.given_problem() is None


def test_retention_given_in_the_runs_config_is_refused_before_its_step(env):
    """`version_retention` with keep_versions 0 in its config failed inside its step with a
    traceback, where ENGAGEMENT_KEEP_VERSIONS=0 is refused first (a re-review)."""
    from pipelines.definitions import defs

    result = defs.resolve_job_def("version_retention").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"resources": {"retention": {"config": {"keep_versions": 0}}}},
        raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]
    assert "RetentionPolicy.keep_versions = 0: ENGAGEMENT_KEEP_VERSIONS" in first_cause(result)


def test_a_path_given_in_the_runs_config_is_read_as_its_setting_is(env, monkeypatch):
    """A config's `~/aud` made a folder named `~` in the working directory and `""` read the
    working directory's exports (a re-review): `~` is the home folder, empty the default."""
    from pipelines.resources import EngagementConfig, LakeResource

    monkeypatch.setenv("HOME", str(env["ENGAGEMENT_DATA_DIR"].parent))
    home = env["ENGAGEMENT_DATA_DIR"].parent
    assert EngagementConfig(audience_dir="~/aud").audience_path == home / "aud"
    assert ExportsResource(data_dir="").path == env["ENGAGEMENT_DATA_DIR"]
    assert LakeResource(lake_dir="~/lake").path == home / "lake"


def test_a_runs_config_that_fixes_a_bad_environment_date_is_taken(env, monkeypatch):
    """ENGAGEMENT_AS_OF in the future in the shell, a good as-of in the run's config: the
    warehouse's check of the dates read the environment alone and refused the run (a
    re-review). The config stands for the variable; without it the run is refused."""
    from pipelines.definitions import defs

    for source in SOURCES:
        shutil.copytree(
            REPO / "data" / "sample" / source,
            env["ENGAGEMENT_DATA_DIR"] / source,
            dirs_exist_ok=True,
        )
    monkeypatch.setenv("ENGAGEMENT_AS_OF", "2099-01-01")
    job = defs.resolve_job_def("engagement_pipeline")
    refused = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key="2025-12-01", raise_on_error=False
    )
    assert "ENGAGEMENT_AS_OF=2099-01-01 is after the run's date" in first_cause(refused)
    taken = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        partition_key="2025-12-01",
        run_config={"resources": {"model_settings": {"config": {"as_of": "2025-12-15"}}}},
        raise_on_error=False,
        op_selection=["staging__fx_rates"],
    )
    assert taken.success, first_cause(taken)


def test_a_signal_during_a_query_stops_the_run_not_only_the_step(tmp_path):
    """Ctrl-C during a DuckDB query: DuckDB stops it and raises its own "Query interrupted",
    which Dagster took for the step's failure, going on with the steps that did not need it
    (a review: three staging steps ran after Ctrl-C). The warehouse's connection raises the
    interrupt it carries, so the run stops there."""
    ran = []

    @dg.asset
    def a_interrupted(warehouse: Warehouse) -> None:
        with warehouse.get_connection():
            try:  # what DuckDB raises when the signal handler's exception stops its query
                raise dg.DagsterExecutionInterruptedError()
            except BaseException as interrupt:
                raise RuntimeError("Query interrupted") from interrupt

    @dg.asset
    def z_independent() -> None:
        ran.append("z")

    result = dg.materialize(
        [a_interrupted, z_independent],
        resources={"warehouse": Warehouse(database=str(tmp_path / "w" / "e.duckdb"))},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    assert ran == []
    started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert started == ["a_interrupted"], started


def test_an_error_raised_in_place_of_an_interrupt_stays_that_error():
    """A step's own message raised `from None` over an interrupt (the publish's "version N is
    published ... the analysts' file could not be built") was turned into the interrupt, and
    its words lost (a re-review); DuckDB's error from the interrupt still is one."""
    from pipelines.resources import _interrupt_behind

    def raised(make):
        try:
            make()
        except BaseException as error:
            return error

    def interrupted():
        raise dg.DagsterExecutionInterruptedError()

    def duckdb_stopped():
        try:
            interrupted()
        except BaseException as interrupt:
            raise RuntimeError("Query interrupted") from interrupt

    def own_message():
        try:
            duckdb_stopped()
        except RuntimeError:
            raise dg.Failure(
                "version 4 is published; the analysts' file could not be built"
            ) from None

    assert isinstance(
        _interrupt_behind(raised(duckdb_stopped)), dg.DagsterExecutionInterruptedError
    )
    assert _interrupt_behind(raised(own_message)) is None
