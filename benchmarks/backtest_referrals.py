"""Backtest of CRV's referral model: from an as-of, the credited referrals the customers of that
day are expected to make in the next 360 days, against those that came.

    .venv/bin/python benchmarks/bench_pipeline.py cold           # first: a warehouse of 1M
    .venv/bin/python benchmarks/backtest_referrals.py \\
        --working /tmp/bench/work/warehouse/engagement.working.duckdb 2024-06-30 2025-06-30

Reads the working database of a pipeline run (its resolved customers, referrals and order
summaries; opened read-only) and, for each as-of given, judges the referrals as a run of that
as-of would (`referral.credited_referrals`: sent and converted by its end), fits the referral
model of `referral.customer_referral_value` (BG/NBD, the NBD when it cannot be fitted) and sums
every customer's `crv_expected_referrals` over 12 months of 30 days. "came": the referrals those
customers made that a run 360 days later credits and that converted after the as-of. The NBD's
expectation of the same customers (a constant rate each) is printed beside it. The as-of and
the 360 days after it must lie within the orders' span for "came" to be whole.
"""

import argparse
import datetime as dt
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import polars as pl

from engagement_box.engagement import metrics, referral
from engagement_box.engagement.config import EngagementSettings
from engagement_box.identity import links as identity

HORIZON_DAYS = 360  # 12 months of 30 days, the CLV's and CRV's horizon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--working", type=Path, required=True, help="a working database")
    parser.add_argument("as_of", nargs="+", type=dt.date.fromisoformat)
    args = parser.parse_args()
    con = duckdb.connect(str(args.working), read_only=True)
    people = con.execute(
        "SELECT customer_id, signup_date AS since FROM intermediate.resolved_customers"
    ).pl()
    buyers = con.execute(
        "SELECT customer_id, min(first_order_date) AS since FROM work.customer_summary GROUP BY 1"
    ).pl()
    sent = identity.resolved(con, "referrals")
    settings = EngagementSettings()

    def customers_at(day: dt.date) -> pl.DataFrame:
        known = [people.filter(pl.col("since") <= day), buyers.filter(pl.col("since") <= day)]
        return referral.customer_start(pl.concat(known, how="vertical_relaxed"))

    def credited_at(day: dt.date, since: pl.DataFrame) -> pl.DataFrame:
        end = dt.datetime.combine(day, dt.time.max)
        known = sent.filter(pl.col("referred_at") <= end).with_columns(
            pl.when(pl.col("converted_at") <= end).then(pl.col("converted_at"))
        )
        clv = since.select("customer_id", pl.lit(0.0).alias("clv"))  # values do not matter here
        return referral.credited_referrals(
            referral.with_referee_since(known, since), clv, settings, day
        )

    print(f"{'as-of':10}  {'customers':>9}  {'came':>7}  {'expected':>9}  {'NBD':>9}  model")
    for as_of in args.as_of:
        since = customers_at(as_of)
        credited = credited_at(as_of, since)
        start = metrics._exposure_start(since.select("customer_id"), sent, since, as_of)
        started = time.process_time()
        out, model = referral.customer_referral_value(credited, start, settings, as_of)
        seconds = time.process_time() - started
        nbd = referral.referral_values(
            referral.referral_exposure(
                start,
                referral.referrer_stats(referral.valued_referrals(credited)),
                as_of,
            ),
            replace(model.fit, dropout=None),
            model.kappa,
            model.mean_value,
            settings,
        )
        later = as_of + dt.timedelta(days=HORIZON_DAYS)
        came = credited_at(later, customers_at(later)).filter(
            (pl.col("converted_at") > dt.datetime.combine(as_of, dt.time.max))
            & pl.col("referrer_customer_id").is_in(since.get_column("customer_id").implode())
        )
        used = model.report()["expected_referrals_from"].split(" (")[0].split(":")[0]
        print(
            f"{as_of}  {since.height:9,}  {came.height:7,}  "
            f"{out['crv_expected_referrals'].sum():9,.1f}  "
            f"{nbd['crv_expected_referrals'].sum():9,.1f}  {used} ({seconds:.2f} CPU-s)"
        )


if __name__ == "__main__":
    main()
