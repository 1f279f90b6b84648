"""Benchmark: identity resolution + engagement metrics + personas + audiences at retail scale.

Synthetic data (generated here, vectorised, fixed seed): 1M customers, 2M orders, 3M social events,
1M reviews, 100k referrals (with --customers, the same events per customer), and a CLV per
customer (gamma-distributed; the CLV module is measured elsewhere). Prints wall seconds per
stage and the peak resident set size. The pipeline total counts everything from the staged
tables onward (identity links, resolved inputs, metrics, personas with their RFM features,
audiences); generating and staging the data are setup.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_engagement.py [--customers 1000000] [--scale 1.0]

(PYTHONPATH is not needed once the project is installed with `pip install -e .`.)

Target: <= 30 s and <= 4 GiB on a laptop-class machine.
"""

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from engagement_box.activation.audiences import build_audiences, write_audiences
from engagement_box.engagement.metrics import EngagementSettings, engagement_values
from engagement_box.engagement.personas import build_personas
from engagement_box.identity.links import build_identity_links, resolved
from engagement_box.staging.contracts import SOCIAL_PLATFORMS

AS_OF = datetime(2025, 1, 1)
EPOCH_US = int(datetime(2022, 1, 1).timestamp() * 1e6)
SPAN_US = int((AS_OF - datetime(2022, 1, 1)).total_seconds() * 1e6)
TIMINGS: list[tuple[str, float]] = []


@contextmanager
def stage(name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    TIMINGS.append((name, elapsed))
    print(f"{name:<28s} {elapsed:7.2f} s", flush=True)


def _id_col(prefix: str, idx: np.ndarray, name: str) -> pl.Series:
    return pl.select(
        (pl.lit(prefix) + pl.lit(pl.Series(idx)).cast(pl.String).str.zfill(8)).alias(name)
    ).to_series()


def _timestamps(rng: np.random.Generator, n: int) -> pl.Series:
    us = EPOCH_US + rng.integers(0, SPAN_US, n)
    return pl.Series(us).cast(pl.Datetime("us"))


def generate(n_cust: int, scale: float, seed: int = 7) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    # Events per customer as at a million customers (2 orders, 3 social events, 1 review, 0.1
    # referral each), times `scale`: a smaller run keeps the same mix.
    per_million = scale * n_cust / 1_000_000
    n_orders, n_social = int(2_000_000 * per_million), int(3_000_000 * per_million)
    n_reviews, n_referrals = int(1_000_000 * per_million), int(100_000 * per_million)

    cust = np.arange(n_cust)
    # 1% of profiles reuse another customer's email with different case / whitespace.
    email_owner = cust.copy()
    dup = rng.random(n_cust) < 0.01
    email_owner[dup] = rng.integers(0, n_cust, dup.sum())
    email_base = _id_col("user", email_owner, "email")
    emails = pl.select(
        pl.when(pl.lit(pl.Series(dup)))
        .then(pl.lit("  USER") + email_base.str.slice(4) + pl.lit("@Example.com "))
        .otherwise(email_base + pl.lit("@example.com"))
        .alias("email")
    ).to_series()
    has_handle = rng.random(n_cust) < 0.6
    handle = pl.select(
        pl.when(pl.lit(pl.Series(has_handle)))
        .then(
            pl.lit("@H")
            + _id_col("", cust, "h")
            + pl.lit(";h")
            + _id_col("", cust, "h")
            + pl.lit("_alt")
        )
        .otherwise(None)
        .alias("social_handles")
    ).to_series()
    signup = pl.Series(
        (np.datetime64("2018-01-01") + rng.integers(0, 2500, n_cust)).astype("datetime64[D]")
    )
    customers = pl.DataFrame(
        {
            "customer_id": _id_col("C", cust, "customer_id"),
            "email": emails,
            "social_handles": handle,
            "signup_date": signup,
            "loyalty_member": rng.random(n_cust) < 0.3,
            "marketing_consent": rng.random(n_cust) < 0.7,
            "country": np.array(["DE", "FR", "US", "GB"])[rng.integers(0, 4, n_cust)],
        }
    )

    buyers = np.minimum((rng.pareto(1.5, n_orders) * n_cust / 20).astype(np.int64), n_cust - 1)
    buyers = rng.permutation(n_cust)[buyers]
    unknown = rng.random(n_orders) < 0.02
    orders = pl.DataFrame(
        {
            "order_id": _id_col("O", np.arange(n_orders), "order_id"),
            "customer_id": _id_col("C", np.where(unknown, buyers + 10 * n_cust, buyers), "c"),
            "email": _id_col("user", buyers, "e") + "@example.com",
            "ordered_at": _timestamps(rng, n_orders),
            "net_amount": np.round(rng.gamma(2.0, 40.0, n_orders), 2),
            "currency": "EUR",
            "status": np.array(["completed"] * 8 + ["returned", "cancelled"])[
                rng.integers(0, 10, n_orders)
            ],
            "channel": np.array(["web", "mobile", "store", "app"])[rng.integers(0, 4, n_orders)],
        }
    )

    handle_owners = cust[has_handle]
    actor = handle_owners[rng.integers(0, handle_owners.size, n_social)]
    # Content owners are skewed: a few influencers attract most reactions.
    target_pos = (handle_owners.size * rng.random(n_social) ** 4).astype(np.int64)
    target = rng.permutation(handle_owners)[target_pos]
    event_types = np.array(["like", "pin", "tweet", "comment", "share", "retweet", "mention"])
    etype = event_types[rng.choice(7, n_social, p=[0.45, 0.05, 0.1, 0.2, 0.08, 0.07, 0.05])]
    stranger = rng.random(n_social) < 0.03
    actor_handle = pl.select(
        pl.when(pl.lit(pl.Series(stranger)))
        .then(pl.lit("stranger") + _id_col("", np.arange(n_social), "x"))
        .otherwise(pl.lit("@h") + _id_col("", actor, "x"))
        .alias("actor_handle")
    ).to_series()
    target_handle = pl.select(
        pl.when(pl.lit(pl.Series(etype == "tweet")))
        .then(None)
        .otherwise(pl.lit("H") + _id_col("", target, "x"))
        .alias("target_handle")
    ).to_series()
    social = pl.DataFrame(
        {
            "event_id": _id_col("S", np.arange(n_social), "event_id"),
            "actor_handle": actor_handle,
            "event_type": etype,
            "target_handle": target_handle,
            "post_id": None,
            "platform": np.array(SOCIAL_PLATFORMS)[
                rng.integers(0, len(SOCIAL_PLATFORMS), n_social)
            ],
            "occurred_at": _timestamps(rng, n_social),
        },
        schema_overrides={"post_id": pl.String},
    )

    author = rng.integers(0, n_cust, n_reviews)
    by_email = rng.random(n_reviews) < 0.2
    reviews = pl.DataFrame(
        {
            "review_id": _id_col("R", np.arange(n_reviews), "review_id"),
            "customer_id": pl.select(
                pl.when(pl.lit(pl.Series(by_email)))
                .then(None)
                .otherwise(_id_col("C", author, "c"))
                .alias("c")
            ).to_series(),
            "email": pl.select(
                pl.when(pl.lit(pl.Series(by_email)))
                .then(_id_col(" USER", author, "e") + pl.lit("@example.com"))
                .otherwise(None)
                .alias("e")
            ).to_series(),
            "product_id": _id_col("P", rng.integers(0, 5000, n_reviews), "p"),
            "rating": rng.integers(1, 6, n_reviews),
            "helpful_votes": rng.poisson(1.5, n_reviews),
            "verified_purchase": rng.random(n_reviews) < 0.8,
            "created_at": _timestamps(rng, n_reviews),
        }
    )

    referrer = rng.integers(0, n_cust // 10, n_referrals)
    referee = rng.integers(0, n_cust, n_referrals)
    referred_us = EPOCH_US + rng.integers(0, SPAN_US - 30 * 86_400_000_000, n_referrals)
    converted = rng.random(n_referrals) < 0.7
    converted_us = referred_us + rng.integers(0, 30 * 86_400_000_000, n_referrals)
    anyway = rng.choice(3, n_referrals)  # 0 False, 1 True, 2 unknown
    referrals = pl.DataFrame(
        {
            "referral_id": _id_col("F", np.arange(n_referrals), "referral_id"),
            "referrer_customer_id": _id_col("C", referrer, "r"),
            "referee_email": _id_col("user", referee, "e") + "@example.com",
            "referee_customer_id": pl.select(
                pl.when(pl.lit(pl.Series(rng.random(n_referrals) < 0.5)))
                .then(None)
                .otherwise(_id_col("C", referee, "c"))
                .alias("c")
            ).to_series(),
            "referred_at": pl.Series(referred_us).cast(pl.Datetime("us")),
            "converted_at": pl.Series(np.where(converted, converted_us, 0)).cast(pl.Datetime("us")),
            "referrer_reward": np.where(rng.random(n_referrals) < 0.9, 10.0, 0.0),
            "referee_reward": 10.0,
            "would_have_joined_anyway": pl.Series(np.where(anyway == 1, True, False))
            .to_frame("w")
            .select(pl.when(pl.lit(pl.Series(anyway == 2))).then(None).otherwise(pl.col("w")))
            .to_series(),
        }
    ).with_columns(
        pl.when(pl.lit(pl.Series(converted))).then(pl.col("converted_at")).otherwise(None)
    )
    clv = pl.DataFrame(
        {
            "customer_id": customers.get_column("customer_id"),
            "clv": rng.gamma(0.8, 150.0, n_cust),
        }
    )
    return {
        "customers": customers,
        "orders": orders,
        "social": social,
        "reviews": reviews,
        "referrals": referrals,
        "clv": clv,
    }


def rfm_features(orders: pl.DataFrame) -> pl.DataFrame:
    return (
        orders.filter(pl.col("customer_id").is_not_null() & (pl.col("status") == "completed"))
        .group_by("customer_id")
        .agg(
            ((pl.lit(AS_OF) - pl.col("ordered_at").max()).dt.total_days()).alias(
                "days_since_last_order"
            ),
            pl.len().alias("order_count"),
            pl.col("net_amount").sum().alias("total_spend"),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiplies the events per customer (orders, social events, reviews, referrals)",
    )
    args = parser.parse_args()
    total_start = time.perf_counter()

    with stage("generate synthetic data"):
        data = generate(args.customers, args.scale)
    print("rows: " + ", ".join(f"{k}={v.height:,}" for k, v in data.items()))

    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        with stage("stage into duckdb"):
            con.execute("create schema staging")
            for name in ("customers", "orders", "social", "reviews", "referrals"):
                con.register("frame_to_stage", data[name].to_arrow())
                con.execute(f"create table staging.{name} as select * from frame_to_stage")
                con.unregister("frame_to_stage")
        with stage("identity resolution (sql)"):
            rates = build_identity_links(con)
        with pl.Config(tbl_rows=20, tbl_cols=9, tbl_width_chars=140):
            print(rates)
        with stage("load resolved inputs"):
            # Only the columns the metrics and RFM read (the projection reaches the views).
            inputs = {
                "orders": resolved(
                    con, "orders", columns=["customer_id", "ordered_at", "net_amount", "status"]
                ),
                "reviews": resolved(
                    con, "reviews", columns=["customer_id", "helpful_votes", "verified_purchase"]
                ),
                "social": resolved(
                    con,
                    "social",
                    columns=["actor_customer_id", "target_customer_id", "event_type", "platform"],
                ),
                "referrals": resolved(con, "referrals"),
            }
        con.close()

        with stage("engagement metrics"):
            values = engagement_values(
                data["clv"],
                inputs["reviews"],
                inputs["social"],
                inputs["referrals"],
                EngagementSettings(
                    crv_acquisition_saved_type1=25.0, crv_acquisition_saved_type2=25.0
                ),
                as_of=AS_OF,
                customers=data["customers"].select("customer_id"),
                customer_since=data["customers"].select(
                    "customer_id", pl.col("signup_date").alias("since")
                ),
            )
        print(values.select("clv", "crv", "civ", "ckv", "cev", "social_points").describe())
        print(values.group_by("quadrant").len().sort("quadrant"))

        with stage("personas"):
            features = values.join(rfm_features(inputs["orders"]), on="customer_id", how="left")
            personas = build_personas(features)
        scores = {k: round(v, 3) for k, v in personas.silhouette_by_k.items()}
        print(f"k={personas.k} silhouette={scores}")
        print(personas.profiles.select("persona_id", "persona", "size"))

        with stage("audiences (csv + parquet)"):
            audiences = build_audiences(data["customers"], quadrants=values)
            write_audiences(audiences, Path(tmp) / "audiences")
        print(f"audience rows: {audiences.height:,}")

    total = time.perf_counter() - total_start
    setup = ("generate synthetic data", "stage into duckdb")
    pipeline = sum(t for name, t in TIMINGS if name not in setup)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{'pipeline (from staged)':<28s} {pipeline:7.2f} s")
    print(f"{'total wall':<28s} {total:7.2f} s")
    print(f"peak RSS {peak_kib / 1024 / 1024:.2f} GiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
