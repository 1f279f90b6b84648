"""The purchase model choice in force (engagement_box/value/choice.py), on a hand-made warehouse:
which earlier choice a run carries, and every reason it chooses again instead."""

import datetime as dt

import duckdb
import pytest

from engagement_box.value import choice

CHOSEN_AT = dt.date(2026, 6, 30)
WINDOW = {
    "currency": "USD",
    "fx_rates": "{}",
    "time_unit": "D",
    "penalizer": 0.0,
    "purchase_model": None,
    "model_choice_days": 28,
}


def window(as_of: dt.date, **changes) -> dict:
    return {**WINDOW, "as_of": as_of, "calibration_end": as_of - dt.timedelta(days=182), **changes}


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA staging")
    con.execute(
        "CREATE TABLE staging.ingested_files "
        "(source VARCHAR, source_file VARCHAR, sha256 VARCHAR, rows_staged BIGINT DEFAULT 1)"
    )
    con.execute(
        "INSERT INTO staging.ingested_files (source, source_file, sha256) "
        "VALUES ('customers', 'customers/c.csv', 'c1'), "
        "('orders', 'orders/o1.csv', 'o1')"
    )
    con.execute("CREATE TABLE staging.orders (order_id VARCHAR, source_file VARCHAR)")
    con.execute("INSERT INTO staging.orders VALUES ('1', 'orders/o1.csv')")
    con.execute("CREATE SCHEMA work")
    con.execute("CREATE TABLE work.model_validation (model VARCHAR, as_of DATE)")
    yield con
    con.close()


def told(as_of: dt.date, choice_as_of: dt.date, model: str | None) -> choice.ChoiceInForce:
    """What the fits were told: chosen on this as-of's holdout, or carried from the day before."""
    if choice_as_of == as_of:
        return choice.ChoiceInForce("chosen")
    before = as_of - dt.timedelta(days=1)
    return choice.ChoiceInForce("carried", before, choice_as_of, model)


def record(con, as_of: dt.date, choice_as_of: dt.date, model: str | None = "mbgnbd", **changes):
    for statement, parameters in choice.record_choice(
        con, window(as_of, **changes), told(as_of, choice_as_of, model), model
    ):
        con.execute(statement, parameters)
    con.execute("INSERT INTO work.model_validation VALUES ($m, $d)", {"m": model, "d": as_of})


def test_a_run_carries_the_choice_of_the_latest_earlier_as_of(con):
    record(con, CHOSEN_AT, CHOSEN_AT)
    day = CHOSEN_AT + dt.timedelta(days=1)
    record(con, day, CHOSEN_AT)  # the next day carried it
    con.execute(
        "INSERT INTO staging.ingested_files (source, source_file, sha256) "
        "VALUES ('orders', 'orders/o2.csv', 'o2')"
    )
    con.execute("INSERT INTO staging.orders VALUES ('2', 'orders/o2.csv')")
    in_force = choice.choice_in_force(con, window(day + dt.timedelta(days=1)))
    assert in_force.carried, in_force.reason
    assert "mbgnbd as chosen on the holdout" in in_force.reason
    assert (in_force.carried_from, in_force.choice_as_of, in_force.model) == (
        day,
        CHOSEN_AT,
        "mbgnbd",
    )
    assert in_force.metadata()["model_choice"] == "carried"
    recorded = choice.recorded_choice(con, day)
    assert (recorded.choice_as_of, recorded.model, recorded.carried_from) == (
        CHOSEN_AT,
        "mbgnbd",
        CHOSEN_AT,
    )
    # A second run of the as-of that chose chooses on its holdout again (the same choice for
    # the same data: a forced choice stays); a second run of a day that carried carries again.
    again = choice.choice_in_force(con, window(CHOSEN_AT))
    assert not again.carried
    assert again.reason == (
        f"new orders were staged since an earlier run of {CHOSEN_AT}, which chose mbgnbd on "
        "this as-of's holdout: chosen again on it"
    )
    rerun = choice.choice_in_force(con, window(day))
    assert rerun.carried and rerun.carried_from == day, rerun.reason
    assert "an earlier run of this as-of" in rerun.reason


def test_a_second_run_of_the_as_of_that_chose_says_what_changed(con):
    """The steps computed in full say why (the CLI prints the reason): an erasure since the
    run that chose, or that the choice's inputs are the same (a forced run, or new reviews:
    "nothing changed", a review found, was not so), not only that a choice was made before."""
    record(con, CHOSEN_AT, CHOSEN_AT)
    forced = choice.choice_in_force(con, window(CHOSEN_AT))
    assert not forced.carried
    assert forced.reason.startswith(
        f"the purchase model's inputs are those from which an earlier run of {CHOSEN_AT} chose "
        "mbgnbd on this as-of's holdout (new reviews, social events or referrals"
    ), forced.reason
    con.execute("CREATE TABLE staging.erasure_log (request_id VARCHAR, rows_deleted JSON)")
    con.execute("""INSERT INTO staging.erasure_log VALUES ('r1', '{"staging.orders": 1}')""")
    erased = choice.choice_in_force(con, window(CHOSEN_AT))
    assert erased.reason.startswith(
        f"an erasure was applied since an earlier run of {CHOSEN_AT}, which chose mbgnbd"
    ), erased.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("UPDATE staging.ingested_files SET sha256 = 'o1b' WHERE sha256 = 'o1'", "changed"),
        (
            "INSERT INTO staging.ingested_files (source, source_file, sha256) "
            "VALUES ('customers', 'customers/d.csv', 'd1')",
            "new",
        ),
        ("DELETE FROM staging.orders", "the staged orders of orders/o1.csv changed"),
        (
            "CREATE TABLE staging.erasure_log (request_id VARCHAR, rows_deleted JSON); "
            "INSERT INTO staging.erasure_log VALUES ('r1', '{\"staging.orders\": 1}')",
            "an erasure was applied",
        ),
    ],
)
def test_anything_but_new_orders_files_chooses_again(con, change, reason):
    record(con, CHOSEN_AT, CHOSEN_AT)
    for statement in change.split("; "):
        con.execute(statement)
    in_force = choice.choice_in_force(con, window(CHOSEN_AT + dt.timedelta(days=1)))
    assert not in_force.carried
    assert reason in in_force.reason and "chosen again" in in_force.reason, in_force.reason


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"penalizer": 0.01}, "penalizer"),
        ({"purchase_model": "bgnbd"}, "purchase_model"),
        ({"time_unit": "W"}, "time_unit"),
        # Which orders are left out (no rate) moves with these: the fits' data changes.
        ({"fx_rates": '{"GBP": 1.27}'}, "fx_rates"),
        ({"currency": "EUR"}, "currency"),
    ],
)
def test_other_fit_settings_choose_again(con, changes, setting):
    record(con, CHOSEN_AT, CHOSEN_AT)
    in_force = choice.choice_in_force(con, window(CHOSEN_AT + dt.timedelta(days=1), **changes))
    assert not in_force.carried and setting in in_force.reason, in_force.reason


def test_another_holdout_length_chooses_again(con):
    record(con, CHOSEN_AT, CHOSEN_AT)
    later = CHOSEN_AT + dt.timedelta(days=1)
    in_force = choice.choice_in_force(
        con, {**window(later), "calibration_end": later - dt.timedelta(days=90)}
    )
    assert not in_force.carried and "holdout" in in_force.reason, in_force.reason


def test_a_pinned_calibration_end_keeps_the_choice_as_the_as_of_moves(con):
    """ENGAGEMENT_CALIBRATION_END fixes the calibration window: the holdout grows by a day a
    day, and the choice made on it is still carried (the holdout's length is not compared)."""
    pinned = {"calibration_end": dt.date(2026, 3, 31), "calibration_end_pinned": True}
    record(con, CHOSEN_AT, CHOSEN_AT, **pinned)
    in_force = choice.choice_in_force(con, window(CHOSEN_AT + dt.timedelta(days=1), **pinned))
    assert in_force.carried, in_force.reason
    other = {**pinned, "calibration_end": dt.date(2026, 4, 30)}
    moved = choice.choice_in_force(con, window(CHOSEN_AT + dt.timedelta(days=1), **other))
    assert not moved.carried and "holdout" in moved.reason, moved.reason


def test_a_pinned_model_is_said_to_be_pinned(con):
    record(con, CHOSEN_AT, CHOSEN_AT, model="pareto_nbd", purchase_model="pareto_nbd")
    in_force = choice.choice_in_force(
        con, window(CHOSEN_AT + dt.timedelta(days=1), purchase_model="pareto_nbd")
    )
    assert in_force.carried, in_force.reason
    assert "pareto_nbd as pinned by ENGAGEMENT_PURCHASE_MODEL" in in_force.reason


def test_the_choice_expires_after_its_days(con):
    record(con, CHOSEN_AT, CHOSEN_AT)
    fresh = choice.choice_in_force(con, window(CHOSEN_AT + dt.timedelta(days=27)))
    old = choice.choice_in_force(con, window(CHOSEN_AT + dt.timedelta(days=28)))
    every_run = choice.choice_in_force(
        con, window(CHOSEN_AT + dt.timedelta(days=1), model_choice_days=0)
    )
    assert fresh.carried, fresh.reason
    assert not old.carried and "28 days old" in old.reason, old.reason
    assert not every_run.carried and "ENGAGEMENT_MODEL_CHOICE_DAYS is 0" in every_run.reason


def test_an_as_of_without_its_comparison_or_with_failed_fits_is_not_carried(con):
    record(con, CHOSEN_AT, CHOSEN_AT)
    day = CHOSEN_AT + dt.timedelta(days=1)
    # The next day's run stopped between model_fit and model_validation: its choice is
    # recorded, its comparison is not; the run after carries the choice from the as-of before.
    for statement, parameters in choice.record_choice(
        con, window(day), told(day, CHOSEN_AT, "mbgnbd"), "mbgnbd"
    ):
        con.execute(statement, parameters)
    later = choice.choice_in_force(con, window(day + dt.timedelta(days=1)))
    assert later.carried and later.carried_from == CHOSEN_AT, later.reason
    # Fits that failed record no choice (and delete the one a rerun of the as-of replaces).
    for statement, parameters in choice.record_choice(
        con, window(CHOSEN_AT), told(CHOSEN_AT, CHOSEN_AT, None), None
    ):
        con.execute(statement, parameters)
    assert con.execute(
        "SELECT count(*) FROM work.model_choice WHERE as_of = $d", {"d": CHOSEN_AT}
    ).fetchone() == (0,)
    none = choice.choice_in_force(con, window(day + dt.timedelta(days=1)))
    assert not none.carried and "no choice recorded" in none.reason, none.reason
