"""Kill real runs with SIGKILL at random points, then check the next normal run.

    .venv/bin/python benchmarks/stress_kills.py --customers 20000 --kills 10

On a generated retailer (ending 2025-12-31, runs use --month 2025-12) and the project's own
`.dagster/dagster.yaml` in a new DAGSTER_HOME, it makes one uninterrupted reference run, then
starts runs on a second warehouse and kills each at a step, taken in turn from `STEPS` (the
first on the fresh warehouse, then one uninterrupted run publishes a version for the others to
protect and a second one times the steps of such a forced run; `published_marts` the last, so
--kills 10 kills at each once), a random moment after the step starts, within half of that
step's seconds in the timing run. After each kill the published file must open, hold exactly one
current version when it holds any, and every retained version must be whole (each mart's rows as
its log recorded them). A kill that did not land inside its step (the step never started or had
finished, by the run's own log, or the run ended first) is tried again at once (no delay);
missed twice, it is a problem: it tested something else. The runs are forced (--force) with the
same inputs, so a publish step killed here writes no new version
(`tests/test_safe_operations.py` kills inside a publish that does). Then a normal run must
finish within the reference run's time plus --slack seconds and publish the same marts (floats
to 1e-9 relative: two identical runs differ in the last bit in a few sums). Prints one line per
kill and the figures; exits 1 if any check fails. Runs see only the ENGAGEMENT_* settings this
script sets (not the shell's, nor `.env`'s).
"""

import argparse
import datetime as dt
import json
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
from engagement_box.governance.compare import (  # noqa: E402
    current_marts,
    differences,
    mart_columns,
)
from engagement_box.settings import isolated_environment  # noqa: E402

STEPS = [
    "staging__customers",
    "staging__orders",
    "staging__social",
    "work__customer_summary",
    "intermediate__identity_links",
    "work__model_fit",
    "work__customer_value",
    "work__engagement_value",
    "customer_persona",
    "published_marts",
]


def start_run(exports: Path, database: Path, log: Path) -> subprocess.Popen:
    home = database.parent / "dagster_home"
    if not home.exists():
        home.mkdir(parents=True)
        shutil.copy(REPO / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    env = {  # the shell's and `.env`'s settings left out: the same run anywhere
        **isolated_environment(
            {
                "ENGAGEMENT_DATA_DIR": str(exports),
                "ENGAGEMENT_WAREHOUSE": str(database),
                "ENGAGEMENT_AUDIENCE_DIR": str(database.parent / "audiences"),
            }
        ),
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


def log_text(log: Path) -> str:
    """The run's console output and the full Dagster log it names."""
    text = log.read_text(errors="replace")
    named = re.search(r"^full log:\s+(\S+)$", text, flags=re.M)
    if named and Path(named[1]).exists():
        text += Path(named[1]).read_text(errors="replace")
    return text


def wait_for(log: Path, marker: str, run: subprocess.Popen, timeout: float) -> bool:
    """Wait for `marker` in the run's console output or in the full Dagster log it names."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_text(log)
        if marker in text:
            return True
        if run.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def versions(database: Path) -> int:
    """Open the published file read-only; check exactly one version is current, and that it and
    every retained version are whole (each mart's rows as the version's log recorded them, read
    through `marts.<mart>` and `marts.<mart>_at`); the number of retained versions. (It looked
    for `marts.snapshots` among the tables, where the published file has it as a view, so it
    checked nothing.)"""
    if not database.exists():
        return 0
    con = duckdb.connect(str(database), read_only=True)
    try:
        if not con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'marts' "
            "AND view_name = 'snapshots'"
        ).fetchone()[0]:
            return 0
        rows = con.execute(
            'SELECT snapshot_id, "tables", is_current FROM marts.snapshots '
            "WHERE expired_at IS NULL ORDER BY snapshot_id"
        ).fetchall()
        current = [snapshot for snapshot, _, is_current in rows if is_current]
        assert not rows or len(current) == 1, f"current versions: {current}"
        for snapshot, tables, is_current in rows:
            for table, count in json.loads(tables).items():
                got = con.execute(
                    f"SELECT count(*) FROM marts.{table}_at({int(snapshot)})"
                ).fetchone()[0]
                assert got == count, (snapshot, table, got, count)
                if is_current:
                    got = con.execute(f"SELECT count(*) FROM marts.{table}").fetchone()[0]
                    assert got == count, ("current", table, got, count)
        return len(rows)
    finally:
        con.close()


def step_seconds(log: Path) -> dict[str, float]:
    """Each step's seconds in a finished run's console output: a kill lands within its step's
    time (a delay longer than the step let the run go on, and the kill tested the next step)."""
    return {
        m[1]: float(m[2])
        for m in re.finditer(r"^  (\S+)\s+ok\s+([0-9.]+)", log.read_text(), flags=re.M)
    }


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
    took = step_seconds(work / "reference.log")

    database = work / "killed" / "w.duckdb"
    database.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    for i in range(args.kills):
        step = STEPS[i % len(STEPS)]
        delay = rng.uniform(0.0, 0.5 * took.get(step, 1.0))
        log = work / f"kill{i:02d}.log"
        started = time.monotonic()
        landed, reached = "", False
        for attempt in range(2):  # a kill that missed its step is tried again at once
            run = start_run(exports, database, log)
            marker = f'Started execution of step "{step}"'
            reached = wait_for(log, marker, run, reference_seconds + 300)
            time.sleep(delay if attempt == 0 else 0.0)
            run.send_signal(signal.SIGKILL)
            code = run.wait()
            # where the kill landed: inside its step, or it tested something else (a faster
            # forced run finished the step first, and the kill fell in the next one; a review)
            if code != -signal.SIGKILL:
                landed = f"the run ended by itself (exit {code}) before the kill"
            elif not reached:
                landed = f"step {step} never started (the run ended first)"
            elif f'Finished execution of step "{step}"' in log_text(log):
                landed = f"{step} had finished when the kill landed"
            else:
                landed = ""
                break
            # the missed run's state is checked too before trying again
            try:
                versions(database)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"kill {i}, a missed attempt: {exc!r}")
        if landed:
            problems.append(f"kill {i}: {landed}, twice")
            reached = False
        try:
            count = versions(database)
            state = (
                f"opens, {count} versions, one current, every one whole"
                if count
                else "opens, no version yet"
            )
        except Exception as exc:  # noqa: BLE001 (reported, the loop goes on)
            state = f"BROKEN: {exc!r}"
            problems.append(f"kill {i}: {exc!r}")
        print(
            f"kill {i:2d}: {step:30} +{delay:.2f} s (reached: {reached}) after "
            f"{time.monotonic() - started:6.1f} s -> {state}"
        )
        if i == 0 and args.kills > 1:
            # a version in place for the kills after the first: what each must leave readable
            # (else every kill before the publish step found no version to check)
            seeded = start_run(exports, database, work / "seed.log").wait()
            print(f"seed run: exit {seeded}; {versions(database)} version(s) to protect")
            if seeded != 0:
                problems.append(f"seed run exit {seeded}")
            # the steps' seconds in a forced run like the ones killed next (staging unchanged
            # files is much faster than the cold reference's): what the delays are drawn within
            timing = start_run(exports, database, work / "timing.log").wait()
            if timing == 0:
                took = step_seconds(work / "timing.log")

    started = time.monotonic()
    log = work / "final.log"
    run = start_run(exports, database, log)
    try:
        code = run.wait(timeout=reference_seconds + args.slack)
    except subprocess.TimeoutExpired:
        run.kill()
        code = None
    final_seconds = time.monotonic() - started
    differ = (
        differences(current_marts(database), reference, mart_columns(database)) if code == 0 else []
    )
    equal = code == 0 and not differ
    print(
        f"final run: exit {code} in {final_seconds:.1f} s (reference {reference_seconds:.1f} s, "
        f"bound {reference_seconds + args.slack:.0f} s); marts equal the reference: {equal}"
    )
    if code != 0:
        problems.append(f"final run exit {code}")
    if code == 0 and differ:
        problems += [f"final marts differ from the reference: {line}" for line in differ]
    else:
        try:
            versions(database)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"after the final run: {exc!r}")
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
