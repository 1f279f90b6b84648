"""A marketing consent withdrawn in a later customers file, or while a run fails (a review
playing marketing-ops): the withdrawal reaches the merged person, the marts and the audience
files at the next run, whether it publishes, has nothing new, or fails a blocking check."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from engagement_box.governance.readers import default_working
from tests.pipeline_runs import copy_run
from tests.test_cli import MONTH, copy_environment, run_cli


def audience_ids(folder: Path) -> set[str]:
    """Every customer id in the audience CSV files of `folder`."""
    return {
        str(cid)
        for path in folder.glob("*/*.csv")
        for cid in pl.read_csv(path, infer_schema=False)["customer_id"].to_list()
    }


def customers_file(copy) -> Path:
    (first,) = sorted((copy.exports / "customers").glob("*.csv"))
    return first


def withdrawn_row(copy, audiences: Path) -> tuple[str, pl.DataFrame]:
    """A consenting customer in the audience files and their profile row, consent withdrawn."""
    profiles = pl.read_csv(customers_file(copy), infer_schema=False)
    someone = sorted(audience_ids(audiences))[0]
    row = profiles.filter(pl.col("customer_id") == someone)
    assert row.height == 1 and row["marketing_consent"][0] == "true"
    return someone, row.with_columns(marketing_consent=pl.lit("false"))


def consent_in_marts(database: Path, customer_id: str) -> bool:
    con = duckdb.connect(str(default_working(database)), read_only=True)
    try:
        return con.execute(
            "SELECT marketing_consent FROM marts.customer WHERE customer_id = ?", [customer_id]
        ).fetchone()[0]
    finally:
        con.close()


def test_a_withdrawal_in_a_later_customers_file_reaches_the_marts_and_audiences(
    december_run, tmp_path
):
    """The later file's row of a staged profile was quarantined as a repeat and the run said
    the person stays in the audiences: the opt-out was ignored for good. The latest word on
    consent now wins (the other attributes stay the first row's), and a later re-consent too."""
    copy = copy_run(december_run, tmp_path / "run")
    audiences = copy.database.parent / "audiences"
    env = copy_environment(tmp_path, copy)
    someone, row = withdrawn_row(copy, audiences)
    row.write_csv(copy.exports / "customers" / "customers_2026-07-01.csv")
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert f"withdraw marketing consent ({someone})" in out, out
    assert "leave the audiences" in out, out
    assert someone not in audience_ids(audiences)
    assert consent_in_marts(copy.database, someone) is False
    record = json.loads((audiences / "_written_from.json").read_text())
    assert record["snapshot_id"] == 2 and record["consent"]["consenting"] > 0
    # The same run again: nothing to do (the withdrawal is part of the version's inputs).
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0 and "nothing to do" in out, out
    # A re-consent in a later file is the latest word: honoured.
    row.with_columns(marketing_consent=pl.lit("true")).write_csv(
        copy.exports / "customers" / "customers_2026-08-01.csv"
    )
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert someone in audience_ids(audiences)
    assert consent_in_marts(copy.database, someone) is True


def test_a_run_failing_a_blocking_check_still_takes_a_withdrawal_to_the_audience_files(
    december_run, tmp_path
):
    """A consent withdrawn in place, and an unrelated export that fails a blocking check (orders
    in a currency without a rate): nothing was published, the audience step was skipped, and
    the person stayed in the files, run after failing run. The files are now written alone from
    the current version with the consent of now, and record it."""
    from tests.conftest import ORDER_HEADER, good_order, write_csv

    copy = copy_run(december_run, tmp_path / "run")
    audiences = copy.database.parent / "audiences"
    env = copy_environment(tmp_path, copy)
    someone, _ = withdrawn_row(copy, audiences)
    path = customers_file(copy)
    profiles = pl.read_csv(path, infer_schema=False)
    profiles.with_columns(
        marketing_consent=pl.when(pl.col("customer_id") == someone)
        .then(pl.lit("false"))
        .otherwise(pl.col("marketing_consent"))
    ).write_csv(path)
    orders = [
        good_order(i, f"X{i:05d}") | {"currency": "XTS", "ordered_at": "2025-12-15T10:00:00"}
        for i in range(400)
    ]
    write_csv(copy.exports / "orders" / "orders_no_rate.csv", orders, ORDER_HEADER)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 1 and "orders_left_out_within_limit" in err, (out, err[-3000:])
    assert "consent of now" in out, out
    assert someone not in audience_ids(audiences)
    record = json.loads((audiences / "_written_from.json").read_text())
    assert record["snapshot_id"] == 1  # the current version's segments, today's consent

    # The daemon's path: the sensor after a failed engagement_pipeline run asks the same
    # question. The files follow the consent of now: it skips. Written with another consent
    # (a record as an earlier writer left it): it asks for the audience_files job.
    def sensor_says():
        from pipelines.resources import EngagementConfig, Warehouse
        from pipelines.sensors import audience_consent_after_failure

        @dg.asset
        def breaks():
            raise RuntimeError("the test's failure")

        with dg.instance_for_test() as instance:
            failed = dg.materialize([breaks], instance=instance, raise_on_error=False)
            (event,) = [e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE"]
            with dg.build_run_status_sensor_context(
                sensor_name="audience_consent_after_failure",
                dagster_event=event,
                dagster_instance=instance,
                dagster_run=failed.dagster_run,
                resources={
                    "warehouse": Warehouse(database=str(copy.database)),
                    "engagement_config": EngagementConfig(audience_dir=str(audiences)),
                },
            ).for_run_failure() as context:
                return audience_consent_after_failure(context)

    assert isinstance(sensor_says(), dg.SkipReason)
    stale = {**record, "consent": {"consenting": 0, "digest": "0"}}
    (audiences / "_written_from.json").write_text(json.dumps(stale))
    asked = sensor_says()
    assert isinstance(asked, dg.RunRequest), asked
    assert "consented to marketing" in asked.tags["engagement/reason"]
    # A second failed run asks again under a key of its own: Dagster drops a request whose key
    # was used, and the opt-out would wait for a run that succeeds (a mutation review).
    again = sensor_says()
    assert isinstance(again, dg.RunRequest) and again.run_key != asked.run_key
    for request in (asked, again):
        failed_run = request.tags["engagement/reason"].split()[1]
        assert request.run_key == f"consent-after-{failed_run}"


def test_a_withdrawal_leaves_the_audience_files_when_the_run_fails_before_the_identity_step(
    december_run, tmp_path
):
    """A withdrawal in a later customers file, and an orders file missing a required column in
    the same run: it failed at staging, before the identity step, and said the person leaves the
    audiences, but the consent of now was read from the merged persons only that step updates,
    so the files kept them (a review). The consent of now counts a withdrawal as soon as it is
    staged; a re-consent waits for a run that gets through the identity step."""
    from assets.publish import audience_consent_behind
    from pipelines.resources import EngagementConfig
    from tests.conftest import ORDER_HEADER, good_order, write_csv

    copy = copy_run(december_run, tmp_path / "run")
    audiences = copy.database.parent / "audiences"
    env = copy_environment(tmp_path, copy)
    someone, row = withdrawn_row(copy, audiences)
    before = json.loads((audiences / "_written_from.json").read_text())["consent"]
    row.write_csv(copy.exports / "customers" / "customers_2026-07-01.csv")
    no_channel = [c for c in ORDER_HEADER if c != "channel"]
    write_csv(copy.exports / "orders" / "orders_no_channel.csv", [good_order(1)], no_channel)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 1 and "missing required column(s) channel" in err, (out, err[-3000:])
    assert "did not run: intermediate__identity_links" in out, out
    assert f"withdraw marketing consent ({someone})" in out and "leave the audiences" in out, out
    assert "audience files written with the consent of now" in out, out
    assert someone not in audience_ids(audiences)
    record = json.loads((audiences / "_written_from.json").read_text())
    assert record["snapshot_id"] == 1  # the current version's segments, today's consent
    assert record["consent"]["consenting"] == before["consenting"] - 1
    # The sensor's question after the next failure: the files follow the consent of now.
    config = EngagementConfig(audience_dir=str(audiences))
    assert audience_consent_behind(default_working(copy.database), config) is None
    # The orders fixed: the identity step takes the withdrawal in, the files stay as they are.
    write_csv(copy.exports / "orders" / "orders_no_channel.csv", [good_order(1)])
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 0, err[-3000:]
    assert someone not in audience_ids(audiences)
    # A re-consent, and an orders file failing again: it waits for a run that succeeds.
    row.with_columns(marketing_consent=pl.lit("true")).write_csv(
        copy.exports / "customers" / "customers_2026-08-01.csv"
    )
    write_csv(copy.exports / "orders" / "orders_no_channel_2.csv", [good_order(2)], no_channel)
    code, out, err = run_cli(env, "--month", MONTH)
    assert code == 1 and "consent of now" not in out, (out, err[-3000:])
    assert someone not in audience_ids(audiences)


def test_the_audience_files_leave_out_anyone_the_erasure_log_names(december_run, tmp_path):
    """A customer the marts still hold whose address an erasure logged (as a profile staged under
    older ingest rules from a file no longer in the exports folder is, its `mailto:` address
    read as the erased person's only by rules 13: an upgrade review) is in no audience file."""
    import datetime as dt

    from engagement_box.governance import erasure
    from pipelines.definitions import defs
    from pipelines.resources import EngagementConfig, ExportsResource, ModelSettings
    from tests.pipeline_runs import warehouse_resource

    copy = copy_run(december_run, tmp_path / "run")
    audiences = copy.database.parent / "audiences"
    someone, row = withdrawn_row(copy, audiences)  # a consenting customer in the files
    email = row["email"][0]
    con = duckdb.connect(str(default_working(copy.database)))
    try:
        erasure.ensure_erasure_tables(con)
        salt = erasure.resolve_salt(con)
        # the customers file taken in under the rules before 13, as an upgraded warehouse's
        con.execute(
            "UPDATE staging.ingested_files SET rules = rules - 1 WHERE source = 'customers'"
        )
        con.execute(  # logged, as an erasure by `mailto:<address>` would log it; nothing deleted
            "INSERT INTO staging.erasure_log VALUES (?, ?, ?, ?, ?)",
            [
                "test",
                [erasure.subject_hash(f"mailto:{email.upper()}", "email", salt)],
                dt.datetime(2026, 1, 1),
                "{}",
                erasure.salt_fingerprint(salt),
            ],
        )
    finally:
        con.close()
    result = defs.resolve_job_def("audience_files").execute_in_process(
        resources={
            "warehouse": warehouse_resource(copy.database),
            "exports": ExportsResource(data_dir=str(copy.exports)),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(audience_dir=str(audiences)),
        },
        raise_on_error=False,
    )
    assert result.success
    assert someone not in audience_ids(audiences)
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["erased_left_out"].value == 1
    assert consent_in_marts(copy.database, someone) is True  # the marts: `erase` takes them out


def profile(customer_id: str, consent: str) -> dict[str, str]:
    return {
        "customer_id": customer_id,
        "email": f"{customer_id}@example.com",
        "social_handles": "",
        "signup_date": "2024-01-01",
        "loyalty_member": "true",
        "marketing_consent": consent,
        "country": "US",
    }


def test_an_opt_out_edited_into_the_first_file_outranks_an_older_repeat(warehouse, exports_dir):
    """A later-named customers file repeated a profile unchanged (consent true); then the
    retailer re-exported the first file with that person opted out. The repeat's file was
    taken in later the first time, so its stale `true` won: the staged profile said false and
    the person stayed in the audiences (a code review). The latest content's word wins now,
    and a re-consent in a file taken in after the edit wins over it again."""
    from engagement_box.governance import versions
    from engagement_box.staging import ingestion
    from tests.conftest import write_csv

    def ingest(day: int) -> None:  # one run a day
        at = dt.datetime(2026, 7, day, 6)
        ingestion.ingest_source(warehouse, exports_dir, "customers", now=at)

    first = exports_dir / "customers" / "customers.csv"
    write_csv(first, [profile("c1", "true"), profile("c2", "true")])
    ingest(1)
    write_csv(exports_dir / "customers" / "customers_2026-07.csv", [profile("c1", "true")])
    ingest(2)
    write_csv(first, [profile("c1", "false"), profile("c2", "true")])  # the opt-out
    ingest(3)
    staged = warehouse.execute(
        "SELECT marketing_consent FROM staging.customers WHERE customer_id = 'c1'"
    ).fetchone()
    assert staged == (False,)
    assert versions.later_consents(warehouse) == []  # nothing overrides the staged opt-out

    write_csv(exports_dir / "customers" / "customers_2026-08.csv", [profile("c1", "true")])
    ingest(4)
    assert versions.later_consents(warehouse) == [
        ["c1", True, "customers/customers_2026-08.csv", 1]
    ]


def test_the_later_consents_kept_for_a_run_are_its_own(warehouse, exports_dir, monkeypatch):
    """Each step's inputs read the consents later customers files changed (about nine times a
    run, 4.3-5.9 s each over 3M repeated profile rows: a code review): the customers' ingest and
    an erasure keep the answer, and a reader takes it only while the staged rows are those it
    was computed from; otherwise it computes its own (a warehouse changed by another writer)."""
    from engagement_box.governance import erasure, versions
    from engagement_box.staging import ingestion
    from tests.conftest import write_csv

    write_csv(
        exports_dir / "customers" / "customers.csv", [profile("c1", "true"), profile("c2", "true")]
    )
    ingestion.ingest_source(warehouse, exports_dir, "customers")
    later = exports_dir / "customers" / "customers_2026-07.csv"
    write_csv(later, [profile("c1", "false"), profile("c2", "false")])
    ingestion.ingest_source(warehouse, exports_dir, "customers")
    withdrawn = [
        ["c1", False, "customers/customers_2026-07.csv", 1],
        ["c2", False, "customers/customers_2026-07.csv", 2],
    ]
    computed = []
    real = versions._later_consents
    monkeypatch.setattr(versions, "_later_consents", lambda con: computed.append(1) or real(con))
    for _ in range(3):
        assert versions.later_consents(warehouse) == withdrawn
    assert computed == []  # the ingest's answer, kept

    # Another writer's change (a repeat deleted by hand): computed, not the kept answer.
    warehouse.execute(
        "DELETE FROM staging.quarantine WHERE source = 'customers' AND source_row = 2"
    )
    assert versions.later_consents(warehouse) == withdrawn[:1] and computed == [1]
    erasure.erase(warehouse, customer_id="c1")  # the erasure keeps its answer again
    computed.clear()
    assert versions.later_consents(warehouse) == [] and computed == []


def test_later_consents_read_a_warehouse_of_an_earlier_release(warehouse, exports_dir):
    """Before this release's first ingest, `staging.ingested_files` has no content_taken_in:
    the consents are ranked as that release ranked them (a binder error stopped the read)."""
    from engagement_box.governance import versions
    from engagement_box.staging import ingestion
    from tests.conftest import write_csv

    write_csv(exports_dir / "customers" / "customers.csv", [profile("c1", "true")])
    ingestion.ingest_source(warehouse, exports_dir, "customers")
    write_csv(exports_dir / "customers" / "customers_2026-07.csv", [profile("c1", "false")])
    ingestion.ingest_source(warehouse, exports_dir, "customers")
    warehouse.execute("DROP TABLE staging.later_consents_memo")
    warehouse.execute("ALTER TABLE staging.ingested_files DROP COLUMN content_taken_in")
    assert versions.later_consents(warehouse) == [
        ["c1", False, "customers/customers_2026-07.csv", 1]
    ]
