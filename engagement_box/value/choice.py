"""The purchase model in force: chosen on the holdout on a schedule of its own, used every day.

Choosing the purchase model (`selection.compare_models`) takes the calibration/holdout split of
every customer, a calibration-window fit of each model, the full-window fits of the models not
chosen, and the holdout comparison: about 6 of a 1 % day's 52 CPU-seconds at 1M customers
(docs/BENCHMARKS.md), every day, to answer a question whose answer moves slowly. Its answer
also flapped: with two models within a few percent of each other on the holdout, a daily choice
could switch models from one day to the next and move every CLV with it.

So a run uses the choice made at an earlier as-of while it is fresh, as the persona model is
used (`engagement_box.engagement.personas.model_in_force`): `work.model_choice` records, per
as-of, which as-of's holdout chose the model and what it was computed from. A run whose latest
earlier as-of holds a choice made fewer than `ENGAGEMENT_MODEL_CHOICE_DAYS` days (28 by default:
a monthly run always chooses again, the daily runs between use the month's choice) before its
own as-of carries that choice when, since that as-of, only new orders files were staged (the
rule of the incremental steps, `incremental.changed_since`: no changed or removed file, no new
file of another source, no erasure, the same model code and the same time unit, penalizer,
pinned model and holdout length):

- `work/calibration_holdout` writes no rows for the as-of (nothing reads them);
- `work/model_fit` fits the chosen model and Gamma-Gamma on the full window (started from the
  earlier fits, as every run's are) and carries the calibration-window fits of the choosing
  as-of; the models not chosen get no full-window fit;
- `work/model_validation` carries the holdout comparison that made the choice.

Every row says which as-of's holdout chose (`choice_as_of`). Anything else, or
ENGAGEMENT_MODEL_CHOICE_DAYS=0, chooses again. "Equal to a cold run" holds with the same choice
in force, as for personas: the scores are those of a cold run that carries the same choice.
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
    """How a run gets its purchase model: carried from `carried_from` (an earlier as-of whose
    rows hold a choice made at `choice_as_of`), or chosen on this as-of's holdout."""

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
    (`incremental.inputs`): the staged files and rows, the erasures, the model code, and the
    settings of the fits and of the holdout."""
    settings = {
        "time_unit": window["time_unit"],
        "penalizer": window["penalizer"],
        "purchase_model": window["purchase_model"],
        "holdout_days": (window["as_of"] - window["calibration_end"]).days,
    }
    return incremental.inputs(con, settings)


def choice_in_force(con: duckdb.DuckDBPyConnection, window: dict) -> ChoiceInForce:
    """The choice this as-of's run uses (see the module doc). Every step of a run that asks gets
    the same answer: it reads only the as-ofs before this one, which the run does not write."""
    as_of, days = window["as_of"], int(window["model_choice_days"])
    if days <= 0:
        return ChoiceInForce("ENGAGEMENT_MODEL_CHOICE_DAYS is 0: chosen on this as-of's holdout")
    if not (table_exists(con, "work", TABLE) and table_exists(con, "work", "model_validation")):
        return ChoiceInForce("no earlier choice recorded: chosen on this as-of's holdout")
    row = con.execute(load_sql("work/model_choice_in_force"), {"as_of": as_of}).fetchone()
    if row is None:
        return ChoiceInForce(
            f"no choice recorded before {as_of} with its holdout comparison: chosen on this "
            "as-of's holdout"
        )
    earlier, choice_as_of, model, stored = row
    age = (as_of - choice_as_of).days
    if age >= days:
        return ChoiceInForce(
            f"the choice in force (made as of {choice_as_of}) is {age} days old, "
            f"ENGAGEMENT_MODEL_CHOICE_DAYS is {days}: chosen again on this as-of's holdout"
        )
    why = incremental.changed_since(json.loads(stored), choice_inputs(con, window))
    if why is not None:
        return ChoiceInForce(
            f"{why} since the run as of {earlier}: chosen again on this as-of's holdout"
        )
    return ChoiceInForce(
        f"{model} as chosen on the holdout as of {choice_as_of} (carried from {earlier}; "
        f"{age} of ENGAGEMENT_MODEL_CHOICE_DAYS={days} days)",
        carried_from=earlier,
        choice_as_of=choice_as_of,
        model=model,
    )


def record_choice(
    con: duckdb.DuckDBPyConnection, window: dict, choice_as_of: dt.date, model: str | None
) -> list[tuple[str, dict]]:
    """The statements (with parameters) recording the choice in force at this as-of (`model`
    None: none, the fits failed); run in the transaction that writes `work.model_fit`, so the
    two never disagree."""
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
                "choice_as_of": choice_as_of,
                "model": model,
                "inputs": json.dumps(inputs, sort_keys=True),
            },
        ),
    ]
