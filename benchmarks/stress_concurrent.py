"""Start several `engagement-box run` processes at once, again and again, with a reader open.

    .venv/bin/python benchmarks/stress_concurrent.py --customers 2000 --runs 5 --rounds 20

On a generated retailer (ending 2025-12-31) and the project's own `.dagster/dagster.yaml` in a
new DAGSTER_HOME, each round starts `--runs` runs of different as-of months at the same moment
(so most rounds publish new versions, some backfills among them), while a separate process holds
a read-only session on the published file and another opens it afresh in a loop. Every run must
exit 0 (or 1 with only the holdout warning check failed: shown as "warn"); after each round every
retained version must be whole (each mart's rows equal the count its log row recorded, in the
published file and in the working database) with exactly one current version, and the readers
must never have failed. Prints one line per round and the figures; exits 1 if any check fails.
"""

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engagement_box import generator  # noqa: E402
from engagement_box.governance import readers  # noqa: E402
from engagement_box.settings import isolated_environment  # noqa: E402

# Months with data (the generated retailer ends 2025-12-31); round r takes the next --runs.
WARN_CHECK = "check holdout_total_within_25pct"
MONTHS = [f"{y}-{m:02d}" for y, m in [(2025, m) for m in range(1, 13)]]

# "hold": one read-only session open all along; "open": opens, queries and closes in a loop (a
# separate process: DuckDB gives a process that still has the file open the same database).
READER = r"""
import os, sys, time, json
import duckdb
mode, path, stop = sys.argv[1:4]
while not os.path.exists(path):
    time.sleep(0.05)
held = duckdb.connect(path, read_only=True) if mode == "hold" else None
queries = 0
failures = []
while not os.path.exists(stop):
    try:
        con = held or duckdb.connect(path, read_only=True)
        con.execute("SELECT count(*) FROM marts.customer_value").fetchone()
        con.execute("SELECT snapshot_id FROM marts.snapshots WHERE is_current").fetchone()
        if held is None:
            con.close()
        queries += 1
    except Exception as exc:
        failures.append(str(exc).splitlines()[0])
    time.sleep(0.05)
print(json.dumps({"queries": queries, "failures": failures[:5]}), flush=True)
"""


def whole(database: Path, history_macro: bool) -> tuple[int, int]:
    """(retained versions, current versions); raises if a version's rows are not all there."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute(
            'SELECT snapshot_id, "tables" FROM marts.snapshots WHERE expired_at IS NULL'
        ).fetchall()
        for snapshot_id, tables in rows:
            for table, count in json.loads(tables).items():
                if history_macro:
                    got = con.execute(f"SELECT count(*) FROM marts.{table}_at({snapshot_id})")
                else:
                    got = con.execute(
                        f"SELECT count(*) FROM history.{table} WHERE snapshot_id = {snapshot_id}"
                    )
                n = got.fetchone()[0]
                assert n == count, (str(database), snapshot_id, table, n, count)
        current = con.execute("SELECT count(*) FROM marts.snapshots WHERE is_current").fetchone()
        return len(rows), current[0]
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5, help="runs started at once per round")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stress_concurrent_"))
    exports = work / "exports"
    if not exports.exists():
        generator.generate(
            exports,
            generator.GeneratorConfig(
                customers=args.customers, seed=args.seed, end=dt.date(2025, 12, 31)
            ),
        )
    database = work / "warehouse" / "w.duckdb"
    database.parent.mkdir(parents=True, exist_ok=True)
    home = database.parent / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    print(f"work dir {work}; {args.customers} customers; {args.runs} runs x {args.rounds} rounds")

    stop = work / "stop-reader"
    readers_started = {
        mode: subprocess.Popen(
            [sys.executable, "-c", READER, mode, str(database), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode in ("hold", "open")
    }
    problems: list[str] = []
    round_seconds = []
    started_all = time.monotonic()
    env = {  # the shell's and `.env`'s settings left out: the same runs anywhere
        **isolated_environment(
            {
                "ENGAGEMENT_DATA_DIR": str(exports),
                "ENGAGEMENT_WAREHOUSE": str(database),
                "ENGAGEMENT_AUDIENCE_DIR": str(database.parent / "audiences"),
            }
        ),
        "DAGSTER_HOME": str(home),
    }
    for r in range(args.rounds):
        months = [MONTHS[(r * args.runs + k) % len(MONTHS)] for k in range(args.runs)]
        logs = [work / f"round{r:02d}_run{k}.log" for k in range(args.runs)]
        started = time.monotonic()
        runs = []
        for month, log in zip(months, logs, strict=True):
            with open(log, "w") as out:
                runs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "engagement_box.cli", "run", "--month", month],
                        cwd=REPO,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        codes = [run.wait() for run in runs]
        seconds = time.monotonic() - started
        round_seconds.append(seconds)
        outcomes = []
        for k, (code, log) in enumerate(zip(codes, logs, strict=True)):
            text = log.read_text(errors="replace")
            failed = [line for line in text.splitlines() if line.startswith("FAILED")]
            # The holdout check warns (it does not block the publish), but the CLI exits 1 on
            # any failed check: such a run did its work, and the data, not concurrency, made it.
            warned = code == 1 and all(WARN_CHECK in line for line in failed) and bool(failed)
            if code != 0 and not warned:
                problems.append(f"round {r} run {k} ({months[k]}): exit {code} {failed[:1]}")
            outcomes.append("ok" if code == 0 else "warn" if warned else f"exit {code}")
        try:
            published = whole(database, history_macro=True)
            working = whole(readers.default_working(database), history_macro=False)
            state = (
                f"published {published[0]} versions ({published[1]} current), working {working[0]}"
            )
            if published[1] != 1 or working[1] != 1:
                problems.append(f"round {r}: current versions {published[1]}, {working[1]}")
        except Exception as exc:  # noqa: BLE001 (reported, the loop goes on)
            state = f"BROKEN: {exc}"
            problems.append(f"round {r}: {exc}")
        print(
            f"round {r:2d}: {','.join(months)} -> {' '.join(outcomes)} in {seconds:6.1f} s; {state}"
        )

    stop.touch()
    reports = {}
    for mode, reader in readers_started.items():
        out, _ = reader.communicate(timeout=60)
        reports[mode] = json.loads(out.splitlines()[-1]) if out.strip() else {"failures": ["?"]}
        if reports[mode]["failures"]:
            problems.append(f"reader ({mode}) failures: {reports[mode]['failures']}")
    total = time.monotonic() - started_all
    print(
        f"{args.rounds * args.runs} runs in {total:.0f} s (round {min(round_seconds):.1f}-"
        f"{max(round_seconds):.1f} s); held session: {reports['hold'].get('queries', 0)} "
        f"queries, fresh opens: {reports['open'].get('queries', 0)}; reader failures: "
        f"{sum(len(r['failures']) for r in reports.values())}"
    )
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
