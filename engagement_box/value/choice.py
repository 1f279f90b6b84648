"""The purchase model in force: chosen on the holdout on a schedule of its own, used every day.

Choosing the purchase model (`selection.compare_models`) takes the calibration/holdout split of
every customer, a calibration-window fit of each model, the full-window fits of the models not
chosen, and the holdout comparison: 5.2-5.7 of a 1 % day's 52 CPU-seconds at 1M customers
(measured: docs/BENCHMARKS.md), every day, to answer a question whose answer moves slowly. Its
answer also flapped: with two models within a few percent of each other on the holdout, a daily
choice could switch models from one day to the next and move every CLV with it.

So a run uses the choice made at an earlier as-of while it is fresh, as the persona model is
used (`engagement_box.engagement.personas.model_in_force`): `work.model_choice` records, per
as-of, which as-of's holdout chose the model and what it was computed from. A run carries the
choice recorded at the latest as-of up to its own (a second run of an as-of that chose on its
own holdout chooses on it again, so a forced choice stays) when that choice was made fewer than
`ENGAGEMENT_MODEL_CHOICE_DAYS` days (28 by default) before the run's as-of, and since that
as-of only new orders files were staged: the rule of the incremental steps
(`incremental.changed_since`): no changed or removed file, no new customers or fx_rates file
(the sources the summaries read: reviews, social events and referrals do not move the purchase
model), no erasure, the same model code, time unit, penalizer and pinned model, and the same
holdout length (or pinned calibration end). So a daily schedule chooses again every 28 days,
and a monthly one on every run. Then:

- `work/calibration_holdout` writes no rows for the as-of (nothing reads them);
- `work/model_fit` fits the chosen model and Gamma-Gamma on the full window (started from the
  earlier fits, as every run's are) and carries the calibration-window fits of the choosing
  as-of; the models not chosen get no full-window fit;
- `work/model_validation` carries the holdout comparison that made the choice.

Every row says which as-of's holdout chose (`choice_as_of`) and why (`choice_reason` of
`model_fit`). Anything else, or ENGAGEMENT_MODEL_CHOICE_DAYS=0, chooses again. "Equal to a cold
run" holds with the same choice in force, as for personas: the scores are those of a cold run
that carries the same choice.
No Dagster import here.
"""

import datetime as dt
import json
from dataclasses import dataclass

import duckdb

from engagement_box import incremental
from engagement_box.sql import load_sql, table_exists

TABLE = "model_choice"


@dataclass(frozen=True)
class ChoiceInForce:
    """How a run gets its purchase model: carried from `carried_from` (the as-of, earlier or
    this one's earlier run, whose rows hold a choice made at `choice_as_of`), or chosen on this
    as-of's holdout."""

    reason: str
    carried_from: dt.date | None = None
    choice_as_of: dt.date | None = None
    model: str | None = None

    @property
    def carried(self) -> bool:
        return self.carried_from is not None

    def metadata(self) -> dict[str, object]:
        return {
            "model_choice": "carried" if self.carried else "chosen",
            "model_choice_reason": self.reason,
            "model_chosen_as_of": str(self.choice_as_of) if self.choice_as_of else "",
        }


def choice_inputs(con: duckdb.DuckDBPyConnection, window: dict) -> dict:
    """What a choice is made from, as an incremental step's state records it
    (`incremental.inputs`): the staged orders, customers and fx_rates files and rows (what the
    summaries read), the erasures, the model code, the settings of the fits and of the
    holdout (its length, or the calibration end when ENGAGEMENT_CALIBRATION_END pins it), and
    the reporting currency and fallback rates (they decide which orders are left out)."""
    holdout = (
        f"calibration end {window['calibration_end']}"
        if window.get("calibration_end_pinned")
        else f"{(window['as_of'] - window['calibration_end']).days} days"
    )
    settings = {
        "time_unit": window["time_unit"],
        "penalizer": window["penalizer"],
        "purchase_model": window["purchase_model"],
        "holdout": holdout,
        "currency": window["currency"],
        "fx_rates": window["fx_rates"],
    }
    return incremental.inputs(con, settings)


def _how(model: str, window: dict, choice_as_of: dt.date) -> str:
    if window["purchase_model"]:
        return f"{model} as pinned by ENGAGEMENT_PURCHASE_MODEL as of {choice_as_of}"
    return f"{model} as chosen on the holdout as of {choice_as_of}"


def choice_in_force(con: duckdb.DuckDBPyConnection, window: dict) -> ChoiceInForce:
    """The choice this as-of's run uses (see the module doc). The holdout and the fits ask
    before the run records its own choice, so both get the same answer; the comparison follows
    what the fits recorded (`recorded_choice`)."""
    as_of, days = window["as_of"], int(window["model_choice_days"])
    if days <= 0:
        return ChoiceInForce("ENGAGEMENT_MODEL_CHOICE_DAYS is 0: chosen on this as-of's holdout")
    if not (table_exists(con, "work", TABLE) and table_exists(con, "work", "model_validation")):
        return ChoiceInForce("no earlier choice recorded: chosen on this as-of's holdout")
    row = con.execute(load_sql("work/model_choice_in_force"), {"as_of": as_of}).fetchone()
    if row is None:
        return ChoiceInForce(
            f"no choice recorded up to {as_of} with its holdout comparison: chosen on this "
            "as-of's holdout"
        )
    earlier, choice_as_of, model, stored = row
    if earlier == choice_as_of == as_of:
        # An earlier run of this as-of chose on its holdout (a forced choice too): choosing
        # again on the same holdout keeps that choice unless the data changed since. Said
        # with what changed since, as the steps computed in full say it.
        recorded, now = json.loads(stored), choice_inputs(con, window)
        why = incremental.changed_since(recorded, now)
        if why is None and recorded == json.loads(json.dumps(now, sort_keys=True)):
            # Not "nothing changed": a review read that on a day of new reviews, which the
            # choice does not read. The same inputs choose the same model; the version keeps
            # the whole comparison, as the run that chose published it.
            return ChoiceInForce(
                f"the purchase model's inputs are those from which an earlier run of {as_of} "
                f"chose {model} on this as-of's holdout (new reviews, social events or "
                "referrals, other engagement settings or a forced run do not move them): chosen "
                "again on it, the same model, with every model's fits as that run had them"
            )
        return ChoiceInForce(
            f"{why or 'new orders were staged'} since an earlier run of {as_of}, which chose "
            f"{model} on this as-of's holdout: chosen again on it"
        )
    age = (as_of - choice_as_of).days
    if age >= days:
        return ChoiceInForce(
            f"the choice in force (made as of {choice_as_of}) is {age} days old, "
            f"ENGAGEMENT_MODEL_CHOICE_DAYS is {days}: chosen again on this as-of's holdout"
        )
    since = "an earlier run of this as-of" if earlier == as_of else f"the run as of {earlier}"
    why = incremental.changed_since(json.loads(stored), choice_inputs(con, window))
    if why is not None:
        return ChoiceInForce(f"{why} since {since}: chosen again on this as-of's holdout")
    return ChoiceInForce(
        f"{_how(model, window, choice_as_of)} (carried from {since}; {age} of "
        f"ENGAGEMENT_MODEL_CHOICE_DAYS={days} days)",
        carried_from=earlier,
        choice_as_of=choice_as_of,
        model=model,
    )


@dataclass(frozen=True)
class RecordedChoice:
    """What work/model_fit recorded for an as-of (`record_choice`)."""

    choice_as_of: dt.date
    model: str
    carried_from: dt.date | None
    reason: str


def recorded_choice(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> RecordedChoice | None:
    """The choice work/model_fit recorded for `as_of`, or None (no record: its fits failed)."""
    if not table_exists(con, "work", TABLE):
        return None
    row = con.execute(load_sql("work/recorded_model_choice"), {"as_of": as_of}).fetchone()
    return RecordedChoice(*row) if row else None


def record_choice(
    con: duckdb.DuckDBPyConnection,
    window: dict,
    in_force: ChoiceInForce,
    model: str | None,
) -> list[tuple[str, dict]]:
    """The statements (with parameters) recording the choice in force at this as-of: `model`
    (None: none, the fits failed), chosen on this as-of's holdout or carried (`in_force`). Run
    in the transaction that writes `work.model_fit`, so the two never disagree."""
    con.execute(load_sql("marts/create_schema", schema="work"))
    con.execute(load_sql("work/create_model_choice"))
    delete = (load_sql("work/delete_model_choice"), {"as_of": window["as_of"]})
    if model is None:
        return [delete]
    inputs = choice_inputs(con, window)
    return [
        delete,
        (
            load_sql("work/insert_model_choice"),
            {
                "as_of": window["as_of"],
                "choice_as_of": in_force.choice_as_of or window["as_of"],
                "model": model,
                "inputs": json.dumps(inputs, sort_keys=True),
                "carried_from": in_force.carried_from,
                "reason": in_force.reason,
            },
        ),
    ]
