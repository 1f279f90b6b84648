"""A Spark run with nothing new publishes nothing (issue 12's "nothing to do costs nothing", on
the Spark engine). The Spark engine rebuilds every table from every export on each run, so a
daily schedule on a quiet day published one more identical version: a full copy of every mart
in the lake each time, and a comparison of the last two versions that found nothing."""

import datetime as dt
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest

from assets.publish import FORCE_TAG
from assets.spark import PUBLISHED_KEY, STAGED_KEY, VERSION_INPUTS_KEY, spark_assets
from engagement_box import generator
from engagement_box.activation import audiences as activation
from engagement_box.spark import audiences as spark_audiences
from engagement_box.spark import engagement, inputs, lake
from pipelines.resources import (
    EngagementConfig,
    ExportsResource,
    LakeResource,
    ModelSettings,
    RetentionPolicy,
    SparkEngine,
)
from tests.spark_runs import environment


@pytest.mark.spark
def test_a_run_with_nothing_new_publishes_nothing_but_retains(session, tmp_path: Path):
    exports = tmp_path / "exports"
    generator.generate(
        exports, generator.GeneratorConfig(customers=60, seed=11, end=dt.date(2025, 12, 31))
    )
    lake_dir, audiences = tmp_path / "lake", tmp_path / "audiences"
    resources = {
        "spark": SparkEngine(master="local[2]", shuffle_partitions=2),
        "lake_dir": LakeResource(lake_dir=str(lake_dir)),
        "exports": ExportsResource(data_dir=str(exports)),
        "model_settings": ModelSettings(as_of="2025-12-31"),
        "engagement_config": EngagementConfig(audience_dir=str(audiences)),
        "retention": RetentionPolicy(),
    }

    staging: dict = {}  # the last staging step's metadata

    def run(tags: dict | None = None):
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize(spark_assets, resources=resources, instance=instance, tags=tags)
            assert result.success
            said = [e.user_message for e in instance.all_logs(result.run_id)]
        materialized = {e.asset_key for e in result.get_asset_materialization_events()}
        for event in result.get_asset_materialization_events():
            if event.asset_key == STAGED_KEY:
                staging.clear()
                staging.update({k: v.value for k, v in event.materialization.metadata.items()})
        return materialized, said

    def validated_again() -> dict[str, int]:
        """Per source, the files the last staging read and validated (not taken from the lake)."""
        return {name: n for name, (n, _) in staging["files_validated"].items() if n}

    def staged_writes() -> dict[str, str]:
        return {
            p.parent.name: p.read_text() for p in (lake_dir / "tables").glob("staging.*/_current")
        }

    working = str(tmp_path / "engagement.working.duckdb")
    where = json.dumps(
        {"exports": str(exports), "lake": str(lake_dir), "audiences": str(audiences)}
    )
    with environment("ENGAGEMENT_WORKING_DB", working), environment(RUN_ENV, where):
        with dg.instance_for_test() as instance:
            job = dg.reconstructable(reexecutable_job)

            def execute(parent=None, broken=None, tags=None):
                again = parent and dg.ReexecutionOptions.from_failure(parent.run_id, instance)
                with pytest.MonkeyPatch.context() as patch:
                    if broken:
                        patch.setattr(*broken, _broken)
                    return dg.execute_job(
                        job, instance=instance, tags=tags, reexecution_options=again
                    )

            # A run fails at the engagement step; Dagster's "re-execute from failure" of it
            # (a new run id) computes that step with another CKV setting and fails at the
            # audiences; a re-execution of that one, the setting put back, publishes. Version 1
            # holds the other setting's numbers: it must not record the first run's inputs (a
            # review: it did, and a quiet run then kept those numbers current).
            failed = execute(broken=(engagement, "engagement_marts"))
            assert not failed.success and lake.snapshot_ids(lake_dir) == []
            with environment("ENGAGEMENT_CKV_VALUE_PER_REVIEW", "50"):
                other = execute(failed, broken=(spark_audiences, "audiences"))
            assert not other.success and other.dagster_run.parent_run_id == failed.run_id
            put_back = execute(other)
            assert put_back.success and lake.snapshot_ids(lake_dir) == [1]
            assert "inputs_fingerprint" not in lake.current(lake_dir)["settings"]

            # Nothing new, but the run tag forces a run: it fails at the engagement step, and
            # its re-execution from failure, with the same settings, publishes a version that
            # records the inputs the forced run fingerprinted, as a whole run's does
            forced = execute(broken=(engagement, "engagement_marts"), tags={FORCE_TAG: "true"})
            assert not forced.success
            retried = execute(forced)
            assert retried.success and retried.dagster_run.parent_run_id == forced.run_id
            done = {e.asset_key for e in retried.get_asset_materialization_events()}
            assert PUBLISHED_KEY in done and VERSION_INPUTS_KEY not in done
        assert lake.snapshot_ids(lake_dir) == [1, 2]
        recorded = lake.current(lake_dir)["settings"]["inputs_fingerprint"]

        # The same files, settings and code: the staged tables stand (nothing read into Spark,
        # nothing written), nothing after them. The run still ends as a publish does: the
        # retention policy (now one version) and the tables' earlier writes deleted.
        resources["retention"] = RetentionPolicy(keep_versions=1)
        before = staged_writes()
        again, said = run()
        assert again == {STAGED_KEY}
        assert any("they stand, nothing is staged again" in m for m in said)
        assert staged_writes() == before
        assert any("version 2 of the lake was computed from these inputs" in m for m in said)
        current = lake.current(lake_dir)
        assert current["snapshot_id"] == 2
        assert list(current["retained"]) == ["2"] and list(current["expired"]) == ["1"]
        for pointer in (lake_dir / "tables").glob("*.*/_current"):
            assert len([p for p in pointer.parent.iterdir() if p.name != "_current"]) == 1

        # An export edited with its size and modification time kept (`cp -p`, `rsync -a`), and
        # a new file whose one row is quarantined for a malformed email and dated after the
        # run's time (a later clock writes its reasons otherwise, so staging never stands while
        # it is there). One run for both: each costs a whole Spark run.
        edited = sorted((exports / "orders").glob("*.csv"))[0]
        stat = edited.stat()
        text = edited.read_text()
        amount = re.search(r",(\d+)\.(\d\d),", text)
        digits = amount.group(1)
        changed = str((int(digits) + 1) % 10 ** len(digits)).zfill(len(digits))
        edited.write_text(text[: amount.start(1)] + changed + text[amount.end(1) :])
        os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert edited.stat().st_size == stat.st_size
        row = pl.read_csv(edited, infer_schema_length=0).head(1)
        row.with_columns(
            order_id=pl.lit("FUTURE-1"),
            email=pl.lit("not an email"),
            ordered_at=pl.lit("2099-01-01 10:00:00"),
        ).write_csv(exports / "orders" / "orders_future.csv")
        later, said = run()
        assert PUBLISHED_KEY in later and lake.current(lake_dir)["snapshot_id"] == 3
        # the run's log says what it published (a review found no line of the run's own)
        assert any(m.startswith("published version 3 of the lake ") for m in said), said
        # the edited file, known by its content, and the new one were read again; no other
        assert validated_again() == {"orders": 2}
        assert lake.current(lake_dir)["settings"]["inputs_fingerprint"] != recorded

        # Staged again with the same outcome, the version's inputs are the same: nothing new.
        before = staged_writes()
        quiet, said = run()
        assert quiet == {STAGED_KEY} and staged_writes() != before
        assert not any("they stand" in m for m in said)
        assert validated_again() == {"orders": 1}  # the file with the future row, again
        assert any("version 3 of the lake was computed from these inputs" in m for m in said)


RUN_ENV = "ENGAGEMENT_TEST_SPARK_RUN"


def reexecutable_job() -> dg.JobDefinition:
    """The Spark engine's assets as a job Dagster can re-execute (`dg.reconstructable`), in
    the test's process, on the folders `RUN_ENV` names."""
    where = json.loads(os.environ[RUN_ENV])
    defs = dg.Definitions(
        assets=spark_assets,
        resources={
            "spark": SparkEngine(master="local[2]", shuffle_partitions=2),
            "lake_dir": LakeResource(lake_dir=where["lake"]),
            "exports": ExportsResource(data_dir=where["exports"]),
            "model_settings": ModelSettings(as_of="2025-12-31"),
            "engagement_config": EngagementConfig(audience_dir=where["audiences"]),
            "retention": RetentionPolicy(),
        },
        jobs=[dg.define_asset_job("spark_test", executor_def=dg.in_process_executor)],
    )
    return defs.resolve_job_def("spark_test")


def _broken(*args, **kwargs):
    raise RuntimeError("the engagement step broke (the test's)")


def test_a_fingerprint_is_found_for_its_run_and_the_runs_re_executing_it(tmp_path: Path):
    """The publish finds the fingerprint its run, or a run it re-executes, recorded; a step
    that writes tables the fingerprint may not describe forgets it."""
    lake_dir = staged_lake(tmp_path, [("orders/a.csv", 100, "sha-a")])
    inputs.record_fingerprint(lake_dir, "fp", "first")
    assert inputs.recorded_fingerprint(lake_dir, {"retry", "first"}) == ("fp", "first")
    assert inputs.recorded_fingerprint(lake_dir, {"other"}) is None
    inputs.forget_fingerprint(lake_dir)
    assert inputs.recorded_fingerprint(lake_dir, {"first"}) is None


def staged_lake(tmp_path: Path, files, rows=(10, 9, 1, 0), erased=frozenset()) -> Path:
    """A lake whose staging recorded `files` (path, size, mtime) and `rows` for orders."""
    report = SimpleNamespace(
        file_stats=list(files),
        rows_read=rows[0],
        rows_staged=rows[1],
        rows_quarantined=rows[2],
        rows_erased=rows[3],
        rows_future=0,
    )
    lake_dir = tmp_path / "lake"
    inputs.record_staged(lake_dir, {"orders": report}, (erased, "salt"))
    return lake_dir


def test_staged_tables_stand_only_for_the_same_files_erasures_code_and_clock(tmp_path: Path):
    """Staging is skipped only when staging again would write the same tables: not for a file
    changed by content, another erasure register or code, a row held back as dated after the
    last staging's run time (a later clock stages it), a staging whose check failed or did not
    finish, or a staged table missing; nor for a record from before these were kept."""
    from engagement_box.spark.tables import record_checks

    files = [["orders/a.csv", 100, "sha-a"]]
    erased = (frozenset({"h"}), "salt")
    tables = ["staging.orders", "staging.quarantine"]
    lake_dir = tmp_path / "lake"

    at = dt.datetime(2026, 1, 5, 10, 0)

    def staged(future: int = 0, code: str = "code") -> None:
        report = SimpleNamespace(
            file_stats=[tuple(f) for f in files],
            rows_read=10,
            rows_staged=9,
            rows_quarantined=1,
            rows_erased=0,
            rows_future=future,
        )
        inputs.record_staged(lake_dir, {"orders": report}, erased, code, at)
        record_checks(lake_dir, inputs.STAGED_STEP, [])

    def stands(**changed) -> bool:
        given = {"files": files, "erased": erased, "code": "code", "tables": tables, "at": at}
        return inputs.staging_stands(lake_dir, **{**given, **changed}) is not None

    staged()
    assert not stands()  # no staged table written yet
    for name in tables:
        (lake_dir / "tables" / name / "w1").mkdir(parents=True)
        (lake_dir / "tables" / name / "_current").write_text("w1")
    assert stands()
    assert inputs.staging_stands(lake_dir, files, erased, "code", tables, at)["rows"] == {
        "orders": [10, 9, 1, 0]
    }
    assert not stands(files=[["orders/a.csv", 100, "sha-b"]])
    assert not stands(files=[*files, ["orders/b.csv", 5, "sha-c"]])
    assert not stands(erased=(frozenset({"h", "i"}), "salt"))
    assert not stands(code="other code")
    assert not stands(tables=[*tables, "staging.reviews"])
    record_checks(lake_dir, inputs.STAGED_STEP, ["rows_reconcile"])
    assert not stands()
    staged(future=1)
    assert not stands()
    staged(code="")  # a record from before the code was kept
    assert not stands()
    staged()
    assert stands() and stands(at=at + dt.timedelta(days=30))
    assert not stands(at=at - dt.timedelta(minutes=1))  # an earlier clock holds rows back
    assert STAGED_KEY.to_user_string() == inputs.STAGED_STEP
    # what a staging's time or code changes is not in the version's inputs: a staging again of
    # the same files with the same outcome keeps the fingerprint
    before = fingerprint(lake_dir)
    at = at + dt.timedelta(days=1)
    staged(code="other code")
    assert fingerprint(lake_dir) == before


def fingerprint(lake_dir: Path, settings: dict | None = None, code: str = "code") -> str:
    return inputs.inputs_fingerprint(lake_dir, settings or {"margin": 0.3}, code, [])


def test_the_inputs_fingerprint_moves_with_each_input(tmp_path: Path):
    """A file changed (its content), added, a row staged by a later run (its date was in the
    future), an erasure, a setting or the model code each give other inputs."""
    files = [("orders/a.csv", 100, "sha-a")]
    base = fingerprint(staged_lake(tmp_path / "0", files))
    same = staged_lake(tmp_path / "1", files)
    assert base == fingerprint(same)
    others = {
        fingerprint(staged_lake(tmp_path / "2", [("orders/a.csv", 100, "sha-b")])),
        fingerprint(staged_lake(tmp_path / "3", [*files, ("orders/b.csv", 5, "sha-c")])),
        fingerprint(staged_lake(tmp_path / "4", files, rows=(10, 10, 0, 0))),
        fingerprint(staged_lake(tmp_path / "5", files, erased=frozenset({"h"}))),
        fingerprint(same, {"margin": 0.4}),
        fingerprint(same, code="other code"),
    }
    assert base not in others and len(others) == 6
    assert inputs.inputs_fingerprint(tmp_path / "no lake", {}, "code", []) is None


def test_a_version_stands_only_with_its_own_audience_files(tmp_path: Path):
    """The current version stands when its inputs are these and the audience folder holds its
    files, written for this lake; not when the folder is another version's, another lake's,
    missing a file, or written by the DuckDB engine."""
    lake_dir = staged_lake(tmp_path, [("orders/a.csv", 100, "sha-a")])
    given = fingerprint(lake_dir)
    folder = tmp_path / "audiences"
    assert inputs.standing_version(lake_dir, given, folder) is None  # nothing published
    lake.publish(lake_dir, {}, {"as_of": "2025-12-31", "inputs_fingerprint": given})
    (folder / "kind").mkdir(parents=True)
    (folder / "kind" / "a.csv").write_text("customer_id\n")
    files = {"kind/a": {"rows": 0, "csv": str(folder / "kind" / "a.csv")}}

    def written(snapshot_id=1, engine="spark", owner=lake_dir):
        activation.record_version(
            folder, snapshot_id, None, files, engine=engine, written_for=owner
        )

    written()
    assert inputs.standing_version(lake_dir, given, folder) == 1
    assert inputs.standing_version(lake_dir, "other", folder) is None
    written(snapshot_id=2)
    assert inputs.standing_version(lake_dir, given, folder) is None
    written(engine="duckdb")
    assert inputs.standing_version(lake_dir, given, folder) is None
    written(owner=tmp_path / "another lake")
    assert inputs.standing_version(lake_dir, given, folder) is None
    written()
    (folder / "kind" / "a.csv").unlink()
    assert inputs.standing_version(lake_dir, given, folder) is None
