"""Benchmark: ingest + validate every source of a generated retailer; prints wall time and memory.

    .venv/bin/python benchmarks/bench_ingest.py --customers 1000000

The exports are generated once into data/generated/bench-<customers>/ (reused afterwards). The
ingest then runs in a fresh child process so its peak memory (max RSS) is its own.
Target (issue 2): 10M orders + 1M customers + 1M reviews + 3M social + 100k referrals in <= 60 s
wall and <= 4 GiB peak on a 2-core machine.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_steal_seconds() -> float:
    """Seconds of CPU the hypervisor gave to others, all cores (Linux /proc/stat; 0 elsewhere).

    The machine is shared: a slow run with much steal is the host, not the code."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def ensure_exports(customers: int, seed: int) -> Path:
    out = REPO / "data" / "generated" / f"bench-{customers}"
    if not (out / "_manifest.json").exists():
        print(f"generating {customers:,} customers into {out} ...", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "engagement_box.generator", "--out", str(out),
             "--customers", str(customers), "--seed", str(seed)],
            check=True, cwd=REPO,
        )  # fmt: skip
        print(f"generated in {time.perf_counter() - started:.1f} s", flush=True)
    return out


def ingest_child(exports: str, warehouse: str) -> None:
    """Runs in the child: ingest every source, print one JSON line of figures."""
    # This checkout's code, not whichever one the environment has installed in editable mode
    # (so that a second worktree measures its own code).
    sys.path.insert(0, str(REPO))
    import duckdb

    from engagement_box.staging.contracts import SOURCES
    from engagement_box.staging.ingestion import ingest_source
    from engagement_box.staging.reconciliation import reconcile

    figures = {}
    started = time.perf_counter()
    con = duckdb.connect(warehouse)
    for name in SOURCES:
        report = ingest_source(con, Path(exports), name)
        assert reconcile(con, name).holds, name
        figures[name] = {
            "rows_read": report.rows_read,
            "staged": report.rows_staged,
            "quarantined": report.rows_quarantined,
            "seconds": round(report.seconds, 2),
        }
    con.close()
    figures["total_seconds"] = round(time.perf_counter() - started, 2)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures["peak_rss_gib"] = round(usage.ru_maxrss / 1024**2, 2)
    figures["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--child", nargs=2, metavar=("EXPORTS", "WAREHOUSE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        ingest_child(*args.child)
        return

    exports = ensure_exports(args.customers, args.seed)
    size = sum(p.stat().st_size for p in exports.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = str(Path(tmp) / "bench.duckdb")
        steal_before = cpu_steal_seconds()
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(exports), warehouse],
            check=True, capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        wall = time.perf_counter() - started
        steal = cpu_steal_seconds() - steal_before
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"exports: {exports} ({size / 1024**2:.0f} MiB)")
    print(f"{'source':10} {'rows read':>12} {'staged':>12} {'quarantined':>12} {'seconds':>8}")
    for name, f in figures.items():
        if isinstance(f, dict):
            print(
                f"{name:10} {f['rows_read']:>12,} {f['staged']:>12,} "
                f"{f['quarantined']:>12,} {f['seconds']:>8.2f}"
            )
    print(
        f"ingest + validate, all sources: {figures['total_seconds']:.1f} s "
        f"(child process wall incl. imports: {wall:.1f} s)"
    )
    print(f"peak memory (max RSS of the ingest process): {figures['peak_rss_gib']:.2f} GiB")
    print(
        f"CPU time of the ingest process: {figures['cpu_seconds']:.1f} s; CPU time the host "
        f"took from this machine meanwhile (steal, all cores): {steal:.1f} s"
    )


if __name__ == "__main__":
    main()
