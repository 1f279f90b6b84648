"""Benchmark: one customer per person (the profile merge) on a generated retailer.

Generates the exports (`engagement-box generate`, cached in data/generated/bench-<n>), ingests
them into a temporary warehouse, then adds duplicate profiles, because the generator writes one
profile per person:

* `--duplicate-share` of the profiles get a second profile: a new id, a later signup, the same
  email in upper case and the same handles (the issue's case: shared email and handle);
* a tenth as many get a bridge profile sharing the email of one profile and a handle of another,
  so people merge transitively (chains of three or more profiles).

Prints the seconds of the whole identity build (merge, survivorship, links, views) and of the
merge statement alone, and what was merged; then the merge again with a chain of `--chain`
profiles added, each sharing a handle with the next (the shape that cost a recursive CTE its
length squared).

    .venv/bin/python benchmarks/bench_identity.py [--customers 150000] [--duplicate-share 0.03]
        [--chain 10000]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code, not another worktree's editable install

from engagement_box.identity.components import merge_labels  # noqa: E402
from engagement_box.identity.links import (  # noqa: E402
    build_identity_links,
    max_profiles_per_key,
)
from engagement_box.sql import load_sql  # noqa: E402
from engagement_box.staging.contracts import SOURCES  # noqa: E402
from engagement_box.staging.ingestion import ingest_source  # noqa: E402

ADD_DUPLICATES = """
insert into staging.customers by name
select
    'dup-' || customer_id as customer_id,
    upper(email) as email,
    social_handles,
    signup_date + 30 as signup_date,
    loyalty_member,
    not marketing_consent as marketing_consent,
    country,
    source_file,
    source_row
from staging.customers
where hash(customer_id || 'dup') % 10000 < $share
"""

ADD_BRIDGES = """
insert into staging.customers by name
with picked as (
    select customer_id, email, row_number() over (order by customer_id) as i
    from staging.customers
    where hash(customer_id || 'bridge') % 100000 < $share
      and customer_id not like 'dup-%'
),
with_handle as (
    select customer_id, social_handles, row_number() over (order by customer_id) as i
    from staging.customers
    where social_handles is not null and customer_id not like 'dup-%'
)
select
    'bridge-' || p.customer_id as customer_id,
    p.email,
    split_part(h.social_handles, ';', 1) as social_handles,
    date '2025-01-01' as signup_date,
    false as loyalty_member,
    true as marketing_consent,
    'DE' as country,
    'bench' as source_file,
    p.i as source_row
from picked as p
inner join with_handle as h on h.i = p.i * 7
"""


def ensure_exports(customers: int, seed: int) -> Path:
    out = REPO / "data" / "generated" / f"bench-{customers}"
    if not (out / "_manifest.json").exists():
        subprocess.run(
            [sys.executable, "-m", "engagement_box.generator", "--out", str(out),
             "--customers", str(customers), "--seed", str(seed)],
            check=True, cwd=REPO,
        )  # fmt: skip
    return out


def merge_seconds(con) -> float:
    """The merge statements alone (connected components) on built identity links, timed, with
    the limit the build used (they crashed without it: the statements read it since the limit
    became a setting)."""
    limit = {"max_profiles_per_key": max_profiles_per_key()}
    started = time.perf_counter()
    con.execute(load_sql("intermediate/customer_merge_edges"), limit)
    with merge_labels(con):
        con.execute(load_sql("intermediate/customer_merge"))
    return time.perf_counter() - started


CHAIN = """
insert into staging.customers by name
select
    'chain-' || i as customer_id,
    'chain-' || i || '@example.com' as email,
    date '2020-01-01' + cast(hash(i, $seed) % 3650 as integer) as signup_date,
    'chain-h' || i || ';chain-h' || (i + 1) as social_handles,
    false as loyalty_member,
    false as marketing_consent,
    'DE' as country,
    'chain.csv' as source_file,
    i as source_row
from range($length) as r(i)
"""


def chain_seconds(con, length: int, seed: int) -> tuple[float, int]:
    """Add a chain of `length` profiles, each sharing a handle with the next, signed up on days
    in a scrambled order (a round of label propagation per link moved along it), and time the
    merge alone; also how many profiles the chain's person has."""
    con.execute(CHAIN, {"length": length, "seed": seed})
    seconds = merge_seconds(con)
    (profiles,) = con.execute(
        "select count(*) from intermediate.customer_merge where resolved_customer_id in "
        "(select resolved_customer_id from intermediate.customer_merge "
        "where customer_id = 'chain-0')"
    ).fetchone()
    return seconds, profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=150_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duplicate-share", type=float, default=0.03)
    parser.add_argument(
        "--chain", type=int, default=10_000, help="then a chain of this many linked profiles"
    )
    args = parser.parse_args()
    exports = ensure_exports(args.customers, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        for name in SOURCES:
            ingest_source(con, exports, name)
        share = int(args.duplicate_share * 10_000)
        con.execute(ADD_DUPLICATES, {"share": share})
        con.execute(ADD_BRIDGES, {"share": share})
        profiles = con.execute("select count(*) from staging.customers").fetchone()[0]

        started = time.perf_counter()
        build_identity_links(con)
        build = time.perf_counter() - started
        merge = merge_seconds(con)

        people, merged, largest = con.execute(
            "select count(*), count(*) filter (where profile_count > 1), max(profile_count) "
            "from intermediate.resolved_customers"
        ).fetchone()
        chain, chained = chain_seconds(con, args.chain, args.seed) if args.chain else (0.0, 0)
        con.close()
    print(f"profiles {profiles:,}, people {people:,}, people with merged profiles {merged:,}")
    print(f"largest person: {largest} profiles")
    print(f"identity build (merge, survivorship, links, views): {build:.2f} s")
    print(f"merge statement alone (connected components): {merge:.2f} s")
    if args.chain:
        print(
            f"with a chain of {args.chain:,} linked profiles in a scrambled signup order: the "
            f"merge {chain:.2f} s, the chain one person of {chained:,} profiles"
        )


if __name__ == "__main__":
    main()
