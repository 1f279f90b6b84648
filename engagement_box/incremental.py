"""Incremental work steps: carry the previous as-of's rows forward, recompute what changed.

A step that can run incrementally records, with the rows it writes (same transaction), what they
were computed from: the staged files of the sources its rows depend on (with their sha256), the
staged row count of each of them, the erasure requests, its settings and the model code version
(`work.incremental_state`, one row per table and as-of). The next run of the step compares that
state with the warehouse as it is now (`plan`):

* same code, same settings, no new erasure, no staged file of the state changed or gone, no row
  of them added or removed, and only new files of the sources that may grow (orders):
  the incremental path. The step keeps the earlier as-of's rows of the customers none of whose
  orders changed, updates what is plain arithmetic on dates (T), and recomputes only the
  customers with an order in a new file or on a day that moved into the window;
* anything else (no earlier state, a changed or re-staged file, an erasure, a settings or code
  change, an as-of earlier than every recorded one): the cold path, the full computation.

Both paths give the same rows (`tests/test_incremental.py` compares them with a cold run).
The step's metadata says which path it took and why (`Plan.metadata`). No Dagster import here.
"""

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb

from engagement_box.governance.versions import (
    STATE,
    erasure_requests,
    files_staging_rows,
    later_consents,
    model_code_version,
)
from engagement_box.sql import database_path, load_sql, table_exists
from engagement_box.staging.contracts import SOURCES

STATE_TABLE = STATE  # retention deletes the states of the as-ofs it trims
# The sources the order summaries read: orders may grow by new files; a change to the others
# (the customers decide who bought an order, the fx rates what it is worth) changes every row.
# Every source counts as read unless named in SUMMARIES_DO_NOT_READ, so a source added to
# `contracts.SOURCES` recomputes every row when it changes until someone shows the summaries
# do not read it (a new owner's review: a returns export left out of a list here published
# stale spend, and no test could tell).
GROWING = "orders"
SUMMARIES_DO_NOT_READ = ("reviews", "social", "referrals")
FIXED = tuple(name for name in SOURCES if name not in (GROWING, *SUMMARIES_DO_NOT_READ))
# The `computation` a step reports when it carried an earlier as-of forward: `Plan.metadata`'s
# "incremental", buyer_days' "unchanged" (no new order), the personas' "assigned" (the model
# in force), and the purchase model's "carried" (the choice in force,
# `engagement_box.value.choice`) with the holdout's "skipped". "cold", the personas' scheduled
# "refit" and the model's "chosen" compute in full.
DAILY_PATHS = ("incremental", "unchanged", "assigned", "carried", "skipped")
# The name the identity links record their state under (`engagement_box.identity.links`).
IDENTITY_STATE = "intermediate.identity_links"


@dataclass(frozen=True)
class Plan:
    """How a step computes its rows this time: incrementally from `previous_as_of`, or cold."""

    incremental: bool
    reason: str
    previous_as_of: dt.date | None = None
    previous: Mapping = field(default_factory=dict)
    new_files: tuple[str, ...] = ()

    def metadata(self) -> dict[str, object]:
        """What the step's materialization says about the path it took."""
        return {
            "computation": "incremental" if self.incremental else "cold",
            "computation_reason": self.reason,
            "carried_from_as_of": str(self.previous_as_of) if self.previous_as_of else "",
        }


def inputs(
    con: duckdb.DuckDBPyConnection,
    settings: Mapping[str, object],
    fixed: Iterable[str] = FIXED,
    *,
    identity: bool = True,
) -> dict:
    """What a step is computed from, now: the staged files of orders and of the `fixed` sources
    (sha256), staged orders per file, erasure requests, settings, code version, and (unless
    `identity` is False: the identity step itself) the settings the identity links were built
    with, which decide who bought what as much as the files do.

    A file that staged no row is not among them (`versions.files_staging_rows`): a new reviews
    file of repeated rows keeps every step on its daily path instead of computing in full."""
    sources = {GROWING, *fixed}
    files = {
        source_file: [source, sha]
        for source, source_file, sha in sorted(files_staging_rows(con), key=lambda row: row[1])
        if source in sources
    }
    order_rows = {}
    if files and table_exists(con, "staging", "orders"):
        order_rows = dict(staged_orders_fact(con, "order_rows", _order_rows))
    found = {
        "files": files,
        "order_rows": order_rows,
        "erasures": erasure_requests(con),
        "settings": {str(k): str(v) for k, v in sorted(settings.items())},
        "code": model_code_version(),
    }
    if not identity:
        # The identity step applies the consents later customers files changed (the merged
        # persons' marketing consent); the steps after it do not read consent.
        consents = later_consents(con)
        if consents:
            found["consent"] = consents
    if identity:
        built = state(con, IDENTITY_STATE, None)
        found["identity"] = dict(built["settings"]) if built else {}
    return found


def _order_rows(con: duckdb.DuckDBPyConnection) -> tuple[tuple[str, int], ...]:
    return tuple(
        (str(source_file), int(n))
        for source_file, n in con.execute(load_sql("staging/orders_per_file")).fetchall()
    )


# Facts about the staged orders that every step of a run asks (the last completed order day,
# the staged orders per file): each is a scan of every staged order (0.1-0.2 CPU-s at 10M
# orders, about 25 times a run), so the run's process keeps the answer for as long as the
# staged orders are the same (`_staged_orders_key`).
_FACTS: dict[tuple, object] = {}


def _staged_orders_key(con: duckdb.DuckDBPyConnection) -> tuple | None:
    """What identifies the staged orders of this database without reading them, or None when
    it cannot be told (no record of the staged files): the database file, the number of staged
    orders (from the table's metadata), every staged orders file with its content hash, and
    the erasures applied. Staging writes a file's rows and its record together; re-staging a
    changed file changes its hash, an erasure its log and the count. Nothing updates staged
    orders in place."""
    if not (
        table_exists(con, "staging", "ingested_files") and table_exists(con, "staging", "orders")
    ):
        return None
    files = con.execute(load_sql("staging/ingested_file_hashes"), {"source": GROWING}).fetchone()[0]
    if not files:
        return None
    path = database_path(con)
    if path is None:
        return None  # an in-memory database: no identity across connections
    count = con.execute(load_sql("staging/count_orders")).fetchone()[0]
    return (path, int(count), tuple(files), tuple(erasure_requests(con)))


def staged_orders_fact(con: duckdb.DuckDBPyConnection, name: str, compute):
    """`compute(con)` (a fact about the staged orders, called `name`), computed once per
    process for the same staged orders (`_staged_orders_key`); computed every time when they
    cannot be identified."""
    key = _staged_orders_key(con)
    if key is None:
        return compute(con)
    key = (name, *key)
    if key not in _FACTS:
        if len(_FACTS) > 64:  # a long-lived process (tests, a code server): keep it small
            _FACTS.clear()
        _FACTS[key] = compute(con)
    return _FACTS[key]


def _last_order_day(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    row = con.execute(load_sql("staging/last_completed_order_day")).fetchone()
    return row[0] if row and row[0] else None


def last_completed_order_day(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The day of the last completed order staged (None: none), which every step's window
    asks: kept by the run's process while the staged orders are the same."""
    return staged_orders_fact(con, "last_order_day", _last_order_day)


def plan(
    con: duckdb.DuckDBPyConnection,
    table: str,
    as_of: dt.date | None,
    now: Mapping,
    rows: str | None = None,
) -> Plan:
    """The path of `table` given `now = inputs(con, ...)`: incremental from the latest recorded
    state (at or before `as_of` for a work table keyed by as-of; `as_of` None: a table with one
    state) whose inputs only grew by new orders files, else cold. `rows`: the query counting the
    table's rows of that state (default: `work.<table>`'s rows of its as-of), held equal to the
    count recorded with them."""
    if not now["files"]:
        return Plan(False, "no record of staged files to compare with: computed in full")
    if not table_exists(con, "work", STATE_TABLE):
        return Plan(False, "no earlier run recorded its state: computed in full")
    if as_of is None:
        row = con.execute(
            load_sql("work/incremental_state_single", state_table=STATE_TABLE), {"table": table}
        ).fetchone()
    else:
        row = con.execute(
            load_sql("work/incremental_state_up_to", state_table=STATE_TABLE),
            {"table": table, "as_of": as_of},
        ).fetchone()
    if row is None:
        upto = f" up to {as_of}" if as_of else ""
        return Plan(False, f"no earlier state of {table}{upto}: computed in full")
    previous_as_of, state = row[0], json.loads(row[1])
    since = f"the run as of {previous_as_of}" if previous_as_of else "the last run"
    why = changed_since(state, now)
    if why is None:
        if rows is None:
            rows = load_sql("work/count_rows_of_as_of", table=table)
        # bound only where the statement (not a comment of its file) takes it
        code = "\n".join(line.split("--")[0] for line in rows.splitlines())
        params = {"as_of": previous_as_of} if "$as_of" in code else {}
        if con.execute(rows, params).fetchone()[0] != state.get("rows"):
            why = f"the rows of {table} changed since they were written"
    if why is not None:
        return Plan(False, f"{why} (since {since}): computed in full")
    new_files = tuple(f for f in now["order_rows"] if f not in state["order_rows"])
    shown = ", ".join(new_files[:5]) + (", ..." if len(new_files) > 5 else "")
    return Plan(
        True,
        f"only new orders since {since}: {len(new_files)} new orders "
        f"file(s){f' ({shown})' if new_files else ''}; the rest carried forward",
        previous_as_of=previous_as_of,
        previous=state,
        new_files=new_files,
    )


def state(con: duckdb.DuckDBPyConnection, table: str, as_of: dt.date | None) -> dict | None:
    """The state recorded with `table`'s rows of `as_of` (None: its one state), or None."""
    if not table_exists(con, "work", STATE_TABLE):
        return None
    row = con.execute(
        load_sql("work/incremental_state", state_table=STATE_TABLE),
        {"table": table, "as_of": as_of},
    ).fetchone()
    return json.loads(row[0]) if row else None


def computed_from(
    con: duckdb.DuckDBPyConnection, table: str, as_of: dt.date | None, now: Mapping
) -> bool:
    """Whether `table`'s rows of `as_of` were computed from exactly the inputs `now` (as
    `inputs` gives them): the state recorded with them (`record`) holds the same."""
    recorded = state(con, table, as_of)
    if recorded is None:
        return False
    recorded = {k: v for k, v in recorded.items() if k != "rows"}
    return recorded == json.loads(json.dumps(now, sort_keys=True))  # as `record` stores it


def changed_since(state: Mapping, now: Mapping) -> str | None:
    """Why the inputs of `state` are not a subset of `now` grown by new orders files, or None."""
    if state.get("code") != now["code"]:
        return "the model code changed"
    if state.get("settings") != now["settings"]:
        changed = sorted(
            k
            for k in set(state.get("settings", {})) | set(now["settings"])
            if state.get("settings", {}).get(k) != now["settings"].get(k)
        )
        return f"settings changed ({', '.join(changed)})"
    if state.get("identity", {}) != now.get("identity", {}):
        return "the identity links were built with other settings"
    if state.get("erasures") != now["erasures"]:
        return "an erasure was applied"
    if state.get("consent", []) != now.get("consent", []):
        return "a later customers file changed a marketing consent"
    before, after = state.get("files", {}), now["files"]
    for name, sha in before.items():
        if name not in after:
            return f"{name} is no longer staged"
        if after[name] != sha:
            return f"{name} changed and was staged again (or another file took its name)"
    for name, (source, _) in after.items():
        if name not in before and source != GROWING:
            # a new file, or one whose every row was quarantined then (and is corrected now)
            return (
                f"{name} stages rows now, and staged none when this was last computed (new "
                f"{source} rows change every customer)"
            )
    for name, rows in state.get("order_rows", {}).items():
        if now["order_rows"].get(name) != rows:
            return f"the staged orders of {name} changed"
    return None


def record(
    con: duckdb.DuckDBPyConnection,
    table: str,
    as_of: dt.date | None,
    now: Mapping,
    rows: int,
    **extra: object,
) -> list[tuple[str, dict]]:
    """The statements (with their parameters) recording the state of `table` (as of `as_of`,
    or its one state when None); run them in the transaction that writes the rows
    (`partitioned.write_partition(also=...)`), so rows and state never disagree."""
    con.execute(load_sql("marts/create_schema", schema="work"))
    con.execute(load_sql("work/create_incremental_state", state_table=STATE_TABLE))
    state = {**now, "rows": rows, **{k: str(v) for k, v in extra.items()}}
    key = {"table": table, "as_of": as_of}
    return [
        (load_sql("work/delete_incremental_state", state_table=STATE_TABLE), key),
        (
            load_sql("work/insert_incremental_state", state_table=STATE_TABLE),
            {**key, "state": json.dumps(state, sort_keys=True)},
        ),
    ]


def mark_changed_customers(
    con: duckdb.DuckDBPyConnection,
    new_files: Iterable[str],
    windows: Sequence[tuple[dt.date, dt.date]],
) -> int:
    """Create this connection's `changed_customers`: the buyers of the orders in `new_files` or
    ordered on a day in one of the `windows` (at most two), each (after, up to and including],
    as `intermediate.orders_resolution` resolves them. Returns how many customers changed."""
    if len(windows) > 2:
        raise ValueError("at most two windows of days")
    padded = [*windows, *[(dt.date(1970, 1, 1), dt.date(1970, 1, 1))] * (2 - len(windows))]
    params: dict[str, object] = {"new_files": list(new_files)}
    for i, (after, until) in enumerate(padded, start=1):
        params[f"after_{i}"], params[f"until_{i}"] = after, until
    con.execute(load_sql("work/changed_customers"), params)
    return int(con.execute(load_sql("work/count_changed_customers")).fetchone()[0])


# The sources the engagement values read besides orders: a change to any of them moves the
# parts carried forward (CKV, social points, the influence network) or every customer's CRV.
# All of them, a new one too.
ENGAGEMENT_FIXED = tuple(name for name in SOURCES if name != GROWING)


def engagement_carry_problem(
    con: duckdb.DuckDBPyConnection,
    previous: Plan,
    as_of: dt.date,
    new_people: int,
) -> str | None:
    """Why the engagement values of `as_of` cannot carry CKV, the social points and the influence
    network from those of `previous.previous_as_of` (an incremental `plan` of engagement_value),
    or None. `new_people`: customers with a profile who are among this as-of's customers and not
    among the earlier one's (their reviews and social events were never counted)."""
    since = previous.previous_as_of
    if since is None:
        return "no earlier engagement values to carry"
    reviews, social = con.execute(
        load_sql("work/engagement_events_between"),
        {
            "after_end": dt.datetime.combine(since + dt.timedelta(days=1), dt.time.min),
            "until_end": dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time.min),
        },
    ).fetchone()
    if reviews or social:
        return (
            f"{reviews} review(s) and {social} social event(s) dated after {since} and up to "
            f"{as_of} count now"
        )
    if new_people:
        return f"{new_people} customer(s) with a profile are counted now and were not at {since}"
    stored = 0
    if table_exists(con, "work", "influence_edges"):
        stored = con.execute(
            load_sql("work/count_rows_of_as_of", table="influence_edges"), {"as_of": since}
        ).fetchone()[0]
    if str(stored) != str(previous.previous.get("edges")):
        return f"the influence network of {since} is not stored as it was computed"
    return None
