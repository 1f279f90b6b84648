"""Kill real runs with SIGKILL at random points, then check the next normal run.

    .venv/bin/python benchmarks/stress_kills.py --customers 20000 --kills 10

On a generated retailer (ending 2025-12-31, runs use --month 2025-12) and the project's own
`.dagster/dagster.yaml` in a new DAGSTER_HOME, it makes one uninterrupted reference run, then
starts runs on a second warehouse and kills each at a random step (the first on the fresh
warehouse; `published_marts` among the steps) a random moment after the step starts. After each
kill the warehouse must open and its current version be whole. Then a normal run must finish
within the reference run's time plus --slack seconds and publish the same marts. Prints one line
per kill and the figures; exits 1 if any check fails.
"""

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engagement_box import generator  # noqa: E402
from engagement_box.governance.compare import current_marts  # noqa: E402

STEPS = [
    "staging__customers",
    "staging__orders",
    "staging__social",
    "work__customer_summary",
    "intermediate__identity_links",
    "work__model_fit",
    "work__customer_value",
    "work__engagement_value",
    "work__customer_persona",
    "published_marts",
]


def start_run(exports: Path, database: Path, log: Path) -> subprocess.Popen:
    home = database.parent / "dagster_home"
    if not home.exists():
        home.mkdir(parents=True)
        shutil.copy(REPO / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "ENGAGEMENT_DATA_DIR": str(exports),
        "ENGAGEMENT_WAREHOUSE": str(database),
        "ENGAGEMENT_AUDIENCE_DIR": str(database.parent / "audiences"),
        "DAGSTER_HOME": str(home),
    }
    with open(log, "w") as out:
        return subprocess.Popen(
            # --force: every run does the whole graph (nothing new would start no run at all)
            [sys.executable, "-m", "engagement_box.cli", "run", "--month", "2025-12", "--force"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(log: Path, marker: str, run: subprocess.Popen, timeout: float) -> bool:
    """Wait for `marker` in the run's console output or in the full Dagster log it names."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        named = re.search(r"^full log:\s+(\S+)$", text, flags=re.M)
        if named and Path(named[1]).exists():
            text += Path(named[1]).read_text(errors="replace")
        if marker in text:
            return True
        if run.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def versions(database: Path) -> int:
    """Open the warehouse read-only; check the current version is whole; count versions."""
    if not database.exists():
        return 0
    con = duckdb.connect(str(database), read_only=True)
    try:
        if not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts' "
            "AND table_name = 'snapshots'"
        ).fetchone()[0]:
            return 0
        rows = con.execute('SELECT "tables" FROM marts.snapshots WHERE is_current').fetchall()
        for (tables,) in rows:
            for table, count in json.loads(tables).items():
                got = con.execute(f"SELECT count(*) FROM marts.{table}").fetchone()[0]
                assert got == count, (table, got, count)
        return con.execute("SELECT count(*) FROM marts.snapshots").fetchone()[0]
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--slack", type=float, default=120.0, help="seconds over the reference")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stress_kills_"))
    exports = work / "exports"
    if not exports.exists():
        generator.generate(
            exports,
            generator.GeneratorConfig(
                customers=args.customers, seed=args.seed, end=dt.date(2025, 12, 31)
            ),
        )
    print(f"work dir {work}; {args.customers} customers; {args.kills} kills")

    reference_db = work / "reference" / "w.duckdb"
    reference_db.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    run = start_run(exports, reference_db, work / "reference.log")
    if run.wait() != 0:
        print("reference run failed; see", work / "reference.log")
        return 1
    reference_seconds = time.monotonic() - started
    reference = current_marts(reference_db)
    print(f"reference run: {reference_seconds:.1f} s")

    database = work / "killed" / "w.duckdb"
    database.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    for i in range(args.kills):
        step = STEPS[0] if i == 0 else rng.choice(STEPS)
        delay = rng.uniform(0.0, 3.0)
        log = work / f"kill{i:02d}.log"
        run = start_run(exports, database, log)
        started = time.monotonic()
        reached = wait_for(log, f'Started execution of step "{step}"', run, reference_seconds + 300)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        try:
            count = versions(database)
            state = f"opens, {count} versions, current whole"
        except Exception as exc:  # noqa: BLE001 (reported, the loop goes on)
            state = f"BROKEN: {exc}"
            problems.append(f"kill {i}: {exc}")
        print(
            f"kill {i:2d}: {step:30} +{delay:.2f} s (reached: {reached}) after "
            f"{time.monotonic() - started:6.1f} s -> {state}"
        )

    started = time.monotonic()
    log = work / "final.log"
    run = start_run(exports, database, log)
    try:
        code = run.wait(timeout=reference_seconds + args.slack)
    except subprocess.TimeoutExpired:
        run.kill()
        code = None
    final_seconds = time.monotonic() - started
    equal = code == 0 and current_marts(database) == reference
    print(
        f"final run: exit {code} in {final_seconds:.1f} s (reference {reference_seconds:.1f} s, "
        f"bound {reference_seconds + args.slack:.0f} s); marts equal the reference: {equal}"
    )
    if code != 0:
        problems.append(f"final run exit {code}")
    if not equal:
        problems.append("final marts differ from the reference")
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
