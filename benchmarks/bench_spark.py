"""The Spark engine against the DuckDB engine on a generated retailer: seconds per stage, and
whether every mart the Spark engine builds equals the DuckDB engine's.

    .venv/bin/python benchmarks/bench_spark.py --customers 20000 [--master local[2]]

Generates the exports into a temporary folder (seeded), runs the DuckDB engine's functions and
the Spark engine's steps on them with the same run time and as-of date, prints one line per
stage and the parity of each mart (integers and text exactly, numbers to 1e-9 relative).
"""

import argparse
import math
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from engagement_box.generator import GeneratorConfig, generate
from engagement_box.identity.links import build_identity_links
from engagement_box.spark import pipeline
from engagement_box.spark.session import local_session
from engagement_box.spark.tables import SparkTables
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import ingest_source
from engagement_box.value import rfm
from engagement_box.value.fitting import fit_bgnbd, fit_gamma_gamma
from engagement_box.value.scoring import score_customers
from engagement_box.value.summary import customer_summary

NOW = datetime(2026, 12, 1)


def same(duck: pl.DataFrame, spark: pl.DataFrame, key: list[str]) -> str:
    if duck.height != spark.height:
        return f"rows differ: {duck.height} against {spark.height}"
    duck, spark = duck.sort(key), spark.sort(key)
    for column in duck.columns:
        a, b = duck[column].to_list(), spark[column].to_list()
        if duck[column].dtype.is_float() or spark[column].dtype.is_float():
            bad = [
                (x, y)
                for x, y in zip(a, b, strict=True)
                if not (x is None and y is None)
                and not (
                    x is not None
                    and y is not None
                    and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
                )
            ]
        else:
            bad = [(x, y) for x, y in zip(a, b, strict=True) if str(x) != str(y)]
        if bad:
            return f"{column}: {len(bad)} values differ, e.g. {bad[0]}"
    return "equal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--exports", type=Path, help="use these exports instead of generating")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    exports = args.exports or work / "exports"
    if args.exports is None:
        generate(exports, GeneratorConfig(customers=args.customers))
    times: dict[str, dict[str, float]] = {"duckdb": {}, "spark": {}}

    def timed(engine: str, stage: str, fn):
        started = time.perf_counter()
        out = fn()
        times[engine][stage] = time.perf_counter() - started
        return out

    con = duckdb.connect(str(work / "duck.duckdb"))
    timed("duckdb", "staging", lambda: [ingest_source(con, exports, s, "b", NOW) for s in SOURCES])
    timed("duckdb", "identity", lambda: build_identity_links(con))
    as_of = con.execute(
        "SELECT max(CAST(ordered_at AS DATE)) FROM staging.orders WHERE status = 'completed'"
    ).fetchone()[0]
    summary = timed(
        "duckdb", "summary", lambda: customer_summary(con, as_of, currency="USD", fx_rates={})
    )
    customers = con.execute(
        "SELECT customer_id FROM intermediate.resolved_customers WHERE signup_date <= $a",
        {"a": as_of},
    ).pl()["customer_id"]
    scored = timed("duckdb", "rfm", lambda: rfm.score_rfm(summary, as_of, customers=customers))
    x, t_x, T, m = (
        summary[c].cast(pl.Float64).to_numpy()
        for c in ("frequency", "recency_days", "T_days", "monetary_value")
    )
    bg, gg = timed(
        "duckdb", "fits", lambda: (fit_bgnbd(x, t_x, T, time_unit="D"), fit_gamma_gamma(x, m))
    )
    values = timed("duckdb", "scores", lambda: score_customers(bg, gg, x, t_x, T, m))

    spark = timed("spark", "session", lambda: local_session(args.master, 4))
    spark.sparkContext.setLogLevel("ERROR")
    tables = SparkTables(spark, work / "lake")
    timed("spark", "staging", lambda: pipeline.stage_all(tables, exports, "b", NOW))
    timed("spark", "identity", lambda: pipeline.build_identity(tables))
    marts, info = timed(
        "spark", "summary+rfm+fits+scores", lambda: pipeline.value_marts(tables, as_of, "USD", {})
    )
    got = {
        name: timed("spark", f"write {name}", lambda f=frame: pl.from_arrow(f.toArrow()))
        for name, frame in marts.items()
    }
    expected_value = summary.select(
        "customer_id",
        pl.Series("p_alive", values["p_alive"]),
        pl.Series("clv", values["clv"]),
    )
    print(f"customers {args.customers}, as-of {as_of}, fit rows {info['fit_rows']}")
    for engine, stages in times.items():
        for stage, seconds in stages.items():
            print(f"{engine:7} {stage:28} {seconds:8.1f} s")
    print(
        "customer_rfm:",
        same(
            scored.with_columns(pl.col("segment").cast(pl.String)),
            got["customer_rfm"].drop("as_of"),
            ["customer_id"],
        ),
    )
    print(
        "customer_value:",
        same(expected_value, got["customer_value"].select(expected_value.columns), ["customer_id"]),
    )
    fits = {(r.model, k): v for r in (bg, gg) for k, v in r.params.items()}
    spark_fits = {(r["model"], r["parameter"]): r["value"] for r in got["model_fit"].to_dicts()}
    close = all(math.isclose(fits[k], spark_fits[k], rel_tol=1e-9) for k in fits)
    print("model_fit:", "equal" if close else f"differ: {fits} against {spark_fits}")
    spark.stop()


if __name__ == "__main__":
    main()
