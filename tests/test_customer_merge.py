"""One customer per person: profiles sharing a normalised email or handle are merged (transitively)
into one resolved customer, with survivorship rules for the attributes, and every metric sees the
merged customer (orders, referrals, social). A tmp_path DuckDB file per test."""

from datetime import date, datetime

import duckdb
import hypothesis.strategies as st
import numpy as np
import polars as pl
import pytest
from hypothesis import given

from engagement_box.activation.audiences import build_audiences
from engagement_box.engagement.config import EngagementSettings
from engagement_box.engagement.metrics import credited_referrals, engagement_values
from engagement_box.engagement.referral import outcome_counts, referral_outcomes
from engagement_box.identity.components import component_labels
from engagement_box.identity.links import (
    build_identity_links,
    match_rates,
    merge_summary,
    resolved,
    shared_keys,
)
from engagement_box.value.summary import customer_summary

T0 = datetime(2024, 1, 1)

CUSTOMER_SCHEMA = {
    "customer_id": pl.String,
    "email": pl.String,
    "social_handles": pl.String,
    "signup_date": pl.Date,
    "loyalty_member": pl.Boolean,
    "marketing_consent": pl.Boolean,
    "country": pl.String,
}
ORDER_SCHEMA = {
    "order_id": pl.String,
    "customer_id": pl.String,
    "email": pl.String,
    "ordered_at": pl.Datetime("us"),
    "net_amount": pl.Float64,
    "currency": pl.String,
    "status": pl.String,
    "channel": pl.String,
}
REVIEW_SCHEMA = {
    "review_id": pl.String,
    "customer_id": pl.String,
    "email": pl.String,
    "product_id": pl.String,
    "rating": pl.Int64,
    "helpful_votes": pl.Int64,
    "verified_purchase": pl.Boolean,
    "created_at": pl.Datetime("us"),
}
SOCIAL_SCHEMA = {
    "event_id": pl.String,
    "actor_handle": pl.String,
    "event_type": pl.String,
    "target_handle": pl.String,
    "post_id": pl.String,
    "platform": pl.String,
    "occurred_at": pl.Datetime("us"),
}
REFERRAL_SCHEMA = {
    "referral_id": pl.String,
    "referrer_customer_id": pl.String,
    "referee_email": pl.String,
    "referee_customer_id": pl.String,
    "referred_at": pl.Datetime("us"),
    "converted_at": pl.Datetime("us"),
    "referrer_reward": pl.Float64,
    "referee_reward": pl.Float64,
    "would_have_joined_anyway": pl.Boolean,
}


def customer(cid, email, handles=None, signup=date(2022, 1, 1), consent=True, **extra) -> dict:
    return {
        "customer_id": cid,
        "email": email,
        "social_handles": handles,
        "signup_date": signup,
        "loyalty_member": extra.get("loyalty", False),
        "marketing_consent": consent,
        "country": extra.get("country", "DE"),
    }


def order(oid, cid, email=None, at=T0, amount=10.0) -> dict:
    return {
        "order_id": oid,
        "customer_id": cid,
        "email": email,
        "ordered_at": at,
        "net_amount": amount,
        "currency": "EUR",
        "status": "completed",
        "channel": "web",
    }


def referral(rid, referrer, referee_id=None, referee_email=None, converted=T0) -> dict:
    return {
        "referral_id": rid,
        "referrer_customer_id": referrer,
        "referee_email": referee_email,
        "referee_customer_id": referee_id,
        "referred_at": T0,
        "converted_at": converted,
        "referrer_reward": 10.0,
        "referee_reward": 10.0,
        "would_have_joined_anyway": False,
    }


def stage(
    con, *, customers, orders=(), reviews=(), social=(), referrals=(), max_profiles=None
) -> None:
    """Stage the five sources (empty when not given) and build the identity links
    (max_profiles: the placeholder limit, else the setting's default)."""
    con.execute("create schema if not exists staging")
    for name, rows, schema in (
        ("customers", customers, CUSTOMER_SCHEMA),
        ("orders", orders, ORDER_SCHEMA),
        ("reviews", reviews, REVIEW_SCHEMA),
        ("social", social, SOCIAL_SCHEMA),
        ("referrals", referrals, REFERRAL_SCHEMA),
    ):
        frame = pl.DataFrame(list(rows), schema=schema)
        con.register("frame_to_stage", frame.to_arrow())
        con.execute(f"create or replace table staging.{name} as select * from frame_to_stage")
        con.unregister("frame_to_stage")
    build_identity_links(con, max_profiles)


def merge_map(con) -> dict[str, str]:
    rows = con.execute(
        "select customer_id, resolved_customer_id from intermediate.customer_merge"
    ).fetchall()
    return dict(rows)


def people(con) -> dict[str, dict]:
    frame = con.execute("select * from intermediate.resolved_customers").pl()
    return {r["customer_id"]: r for r in frame.iter_rows(named=True)}


@pytest.fixture()
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "test.duckdb"))
    yield con
    con.close()


def test_issue_case_duplicate_profiles_are_one_customer_and_earn_no_crv(con):
    """Two profiles sharing a normalised email and a handle are one customer; a 'referral' from
    one to the other is a self-referral: no CRV, and the reason is given."""
    stage(
        con,
        customers=[
            customer("p1", "Sam@Example.com", "@Sammy", signup=date(2022, 1, 1)),
            customer("p2", " sam@example.com", "sammy", signup=date(2023, 5, 1)),
            customer("q1", "quinn@example.com", "quinn", signup=date(2022, 2, 1)),
            customer("q2", "rae@example.com", None, signup=date(2022, 3, 1)),
        ],
        orders=[order("o1", "p1"), order("o2", "p2"), order("o3", "q2")],
        referrals=[
            referral("f1", "p1", referee_id="p2"),  # one person "referring" themselves
            referral("f2", "q1", referee_email="RAE@example.com"),  # a real referral
        ],
    )
    assert merge_map(con) == {"p1": "p1", "p2": "p1", "q1": "q1", "q2": "q2"}
    person = people(con)
    assert set(person) == {"p1", "q1", "q2"}
    assert person["p1"]["profile_count"] == 2

    refs = resolved(con, "referrals").sort("referral_id")
    assert refs.row(0, named=True)["referrer_customer_id"] == "p1"
    assert refs.row(0, named=True)["referee_customer_id"] == "p1"
    outcomes = referral_outcomes(refs).sort("referral_id")
    assert outcomes.get_column("outcome").to_list() == ["self_referral", "credited"]
    assert outcome_counts(outcomes)["self_referral"] == 1

    clv = pl.DataFrame({"customer_id": ["p1", "q2"], "clv": [120.0, 80.0]})
    settings = EngagementSettings()
    # Judged on the staged ids, the two profiles look like two customers and f1 earns credit:
    # the merge is what stops it.
    staged_ids = refs.with_columns(pl.lit("p2").alias("referee_customer_id")).filter(
        pl.col("referral_id") == "f1"
    )
    assert credited_referrals(staged_ids, clv, settings, T0.date()).height == 1

    values = engagement_values(
        clv,
        resolved(con, "reviews"),
        resolved(con, "social"),
        refs,
        settings,
        as_of=date(2024, 6, 30),
        customers=pl.DataFrame({"customer_id": sorted(person)}),
    )
    by_id = {r["customer_id"]: r for r in values.iter_rows(named=True)}
    assert set(by_id) == {"p1", "q1", "q2"}  # p2 is not a customer of its own
    assert by_id["p1"]["crv_referrals"] == 0 and by_id["p1"]["crv_realized"] == 0.0
    assert by_id["q1"]["crv_referrals"] == 1 and by_id["q1"]["crv_realized"] != 0.0
    # The orders of both profiles are the one person's.
    orders = resolved(con, "orders").sort("order_id")
    assert orders.get_column("customer_id").to_list() == ["p1", "p1", "q2"]


def test_a_transitive_chain_is_one_customer_with_the_earliest_profile_surviving(con):
    """A-B share an email, B-C a handle: A, B and C are one person, whose id is the profile that
    signed up first (C), whichever profile the chain is read from. D shares nothing."""
    stage(
        con,
        customers=[
            customer("A", "ann@example.com", None, signup=date(2021, 1, 1)),
            customer("B", "ANN@example.com ", "@bee;bee2", signup=date(2022, 1, 1)),
            customer("C", "c@example.com", "Bee", signup=date(2020, 1, 1)),
            customer("D", "d@example.com", "dee", signup=date(2019, 1, 1)),
        ],
        social=[
            {
                "event_id": "s1",
                "actor_handle": "BEE2",
                "event_type": "like",
                "target_handle": "@dee",
                "post_id": None,
                "platform": "instagram",
                "occurred_at": T0,
            }
        ],
    )
    assert merge_map(con) == {"A": "C", "B": "C", "C": "C", "D": "D"}
    assert {k: v["profile_count"] for k, v in people(con).items()} == {"C": 3, "D": 1}
    assert merge_summary(con) == {
        "profiles": 4,
        "people": 2,
        "profiles_merged_into_another": 2,
        "people_with_several_profiles": 1,
        "most_profiles_of_one_person": 3,
    }
    # Every key of every merged profile resolves to the person: B's other handle too.
    social = resolved(con, "social").row(0, named=True)
    assert (social["actor_customer_id"], social["target_customer_id"]) == ("C", "D")
    keys = con.execute(
        "select role, normalized_value, customer_id from intermediate.identity_links "
        "where source = 'customers' order by role, normalized_value"
    ).fetchall()
    assert keys == [
        ("customer", "A", "C"),
        ("customer", "B", "C"),
        ("customer", "C", "C"),
        ("customer", "D", "D"),
        ("email", "ann@example.com", "C"),
        ("email", "c@example.com", "C"),
        ("email", "d@example.com", "D"),
        ("handle", "bee", "C"),
        ("handle", "bee2", "C"),
        ("handle", "dee", "D"),
    ]


def test_a_long_chain_and_a_widely_shared_key_converge(con):
    """Label propagation reaches the end of a 60-profile chain (each profile shares a handle with
    the next), and 40 profiles on one email are one person when the limit allows 40."""
    chain = [
        customer(f"k{i:03d}", f"k{i}@example.com", f"h{i};h{i + 1}", signup=date(2022, 1, 1))
        for i in range(60)
    ]
    star = [customer(f"s{i:03d}", "shared@example.com", None) for i in range(40)]
    stage(con, customers=chain + star, max_profiles=40)
    merged = merge_map(con)
    assert {merged[f"k{i:03d}"] for i in range(60)} == {"k000"}
    assert {merged[f"s{i:03d}"] for i in range(40)} == {"s000"}
    assert sorted(people(con)) == ["k000", "s000"]


def test_a_chain_of_thousands_in_scrambled_signup_order_is_one_person(con):
    """3,000 profiles, each sharing a handle with the next, signed up in a shuffled order: one
    person, whose id is the profile that signed up first (in the middle of the chain). A
    recursive CTE that moved labels one edge per round took a round per profile here (12,000
    profiles: 31.6 s)."""
    import random

    n = 3000
    days = list(range(n))
    random.Random(20261207).shuffle(days)
    chain = [
        customer(f"k{i:04d}", None, f"h{i};h{i + 1}", signup=date.fromordinal(730_000 + days[i]))
        for i in range(n)
    ]
    stage(con, customers=chain + [customer("alone", "alone@example.com", "h-alone")])
    first = f"k{days.index(0):04d}"
    assert 0 < days.index(0) < n - 1  # the survivor is inside the chain, not at an end
    merged = merge_map(con)
    assert {merged[f"k{i:04d}"] for i in range(n)} == {first}
    assert merged["alone"] == "alone"
    assert people(con)[first]["profile_count"] == n


@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), max_size=60))
def test_component_labels_are_each_components_smallest_rank(pairs):
    """The labels against a plain union-find: every node on an edge, labelled with the smallest
    rank of its component, nodes in rank order (loops and repeated edges included)."""
    parent: dict[int, int] = {}

    def root(a: int) -> int:
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    expected = sorted((node, root(node)) for node in parent)
    rank, label = component_labels(
        np.array([a for a, _ in pairs], dtype=np.int64),
        np.array([b for _, b in pairs], dtype=np.int64),
    )
    assert list(zip(rank.tolist(), label.tolist(), strict=True)) == expected


def test_survivorship_most_restrictive_consent_and_newest_contact(con):
    stage(
        con,
        customers=[
            # yes + yes: yes; email and country from the newest profile (y2)
            customer("y1", "yan@example.com", "yan", date(2020, 1, 1), True, country="DE"),
            customer("y2", "yan.new@example.com", "@YAN", date(2023, 1, 1), True, country="FR"),
            # yes + no: no, though the surviving profile said yes
            customer("n1", "nia@example.com", None, date(2020, 1, 1), True, loyalty=True),
            customer("n2", "NIA@example.com", None, date(2021, 1, 1), False),
            # yes + unknown: no (consent must be given)
            customer("u1", "uma@example.com", None, date(2020, 1, 1), True),
            customer("u2", "uma@example.com", None, date(2021, 1, 1), None),
            # alone, yes
            customer("z1", "zoe@example.com", None, date(2020, 1, 1), True),
        ],
    )
    person = people(con)
    assert set(person) == {"y1", "n1", "u1", "z1"}
    assert {k: v["marketing_consent"] for k, v in person.items()} == {
        "y1": True,
        "n1": False,
        "u1": False,
        "z1": True,
    }
    assert (person["y1"]["email"], person["y1"]["country"]) == ("yan.new@example.com", "FR")
    assert person["y1"]["signup_date"] == date(2020, 1, 1)
    assert person["n1"]["loyalty_member"] is True  # any profile a member: the person is
    # Audiences read the merged person: one row each, and only the consenting people.
    merged = con.execute(
        "select customer_id, email, marketing_consent from intermediate.resolved_customers"
    ).pl()
    segments = pl.DataFrame({"customer_id": sorted(person), "segment": ["Champions"] * len(person)})
    out = build_audiences(merged, segments=segments)
    assert out.get_column("customer_id").to_list() == ["y1", "z1"]
    assert out.get_column("email").to_list() == ["yan.new@example.com", "zoe@example.com"]


def test_guest_orders_by_email_land_on_the_merged_person(con):
    """An order with an unknown id and the email of a merged (non-surviving) profile counts for
    the person, as do orders under either profile's id: one customer in the summary."""
    stage(
        con,
        customers=[
            customer("old", "kim@example.com", "kimk", signup=date(2020, 1, 1)),
            customer("new", "kim.work@example.com", "@KimK", signup=date(2023, 1, 1)),
        ],
        orders=[
            order("o1", "old", "kim@example.com", datetime(2024, 1, 5)),
            order("o2", "new", "kim.work@example.com", datetime(2024, 2, 5)),
            order("o3", "guest-17", " Kim.Work@Example.com", datetime(2024, 3, 5)),
            order("o4", "guest-18", "nobody@example.com", datetime(2024, 3, 6)),
        ],
    )
    orders = resolved(con, "orders").sort("order_id")
    assert orders.get_column("customer_id").to_list() == ["old", "old", "old", None]
    assert orders.get_column("match_rule").to_list() == [
        "customer_id",
        "customer_id",
        "email",
        None,
    ]
    summary = customer_summary(con, date(2024, 4, 1), resolve_identity=True)
    by_customer = {r["customer_id"]: r for r in summary.iter_rows(named=True)}
    assert set(by_customer) == {"old", "guest-18"}
    assert (by_customer["old"]["order_count"], by_customer["old"]["frequency"]) == (3, 2)


def test_profiles_sharing_nothing_are_left_as_they_are(con):
    """Without shared keys the merge changes nothing: each profile is its own person with its own
    attributes, and every key resolves to its own profile (as before merging existed)."""
    rows = [
        customer("c1", "a@example.com", "aa;ab", date(2021, 1, 1), True, country="DE"),
        customer("c2", "b@example.com", None, date(2020, 1, 1), False, country="FR", loyalty=True),
        customer("c3", "c@example.com", "cc", date(2022, 1, 1), True, country="US"),
    ]
    stage(con, customers=rows)
    assert merge_map(con) == {"c1": "c1", "c2": "c2", "c3": "c3"}
    person = people(con)
    for row in rows:
        merged = person[row["customer_id"]]
        assert merged["profile_count"] == 1
        for column in ("email", "signup_date", "loyalty_member", "marketing_consent", "country"):
            assert merged[column] == row[column]
    handles = dict(
        con.execute(
            "select normalized_value, customer_id from intermediate.identity_links "
            "where source = 'customers' and role = 'handle'"
        ).fetchall()
    )
    assert handles == {"aa": "c1", "ab": "c1", "cc": "c3"}


def test_rebuild_after_a_new_duplicate_profile_keeps_the_surviving_id(con):
    """A newer duplicate profile joins the person without changing their id."""
    first = [customer("a1", "lee@example.com", None, signup=date(2020, 1, 1))]
    stage(con, customers=first)
    assert merge_map(con) == {"a1": "a1"}
    stage(con, customers=[*first, customer("a0", "LEE@example.com", None, date(2024, 1, 1))])
    assert merge_map(con) == {"a1": "a1", "a0": "a1"}


def test_erasing_the_surviving_profile_leaves_no_trace_of_its_id(con):
    """The merge tables hold the person's id in resolved_customer_id too: erasure reaches it.
    Erasure follows the merge's links: the profile linked by a handle only is the same person
    and goes too."""
    from engagement_box.governance.erasure import erase

    stage(
        con,
        customers=[
            customer("e1", "eve@example.com", "evie", signup=date(2020, 1, 1)),
            customer("e2", "eve.two@example.com", "@Evie", signup=date(2021, 1, 1)),
        ],
    )
    for name in ("customers", "orders", "reviews", "social", "referrals"):
        con.execute(f"alter table staging.{name} add column source_file varchar default 'f.csv'")
    erase(con, customer_id="e1", salt="test-salt", now=T0)
    for table in ("customer_merge", "resolved_customers", "identity_links"):
        rows = con.execute(f"select * from intermediate.{table}").fetchall()
        assert not [r for r in rows if "e1" in r or "eve@example.com" in r], (table, rows)
    assert con.execute("select count(*) from staging.customers").fetchone()[0] == 0


def test_a_failed_build_leaves_the_previous_merge_and_links(con):
    """The merge, the merged customers and the links are built in one transaction."""
    stage(con, customers=[customer("a1", "lee@example.com", None)])
    before = merge_map(con)
    con.execute(
        "insert into staging.customers by name "
        "select 'a2' as customer_id, 'LEE@example.com' as email, date '2024-01-01' as signup_date"
    )
    con.execute("drop table staging.social")  # the links' last statement reads it: it fails
    with pytest.raises(duckdb.CatalogException):
        build_identity_links(con)
    assert merge_map(con) == before
    assert list(people(con)) == ["a1"] and people(con)["a1"]["profile_count"] == 1


def test_a_placeholder_email_or_handle_merges_no_one_and_resolves_nothing(con):
    """A shop's noemail@ on 7 profiles and its own handle on 6 are not a person's (default limit
    5): those profiles stay 13 people, and a guest order, a review, a social event and a
    referral carrying only such a key stay unresolved (counted as such); a family's email on 2
    profiles still merges them, and rows carrying it still resolve to them."""
    shop = [customer(f"p{i}", " NoEmail@Shop.com ", None) for i in range(7)]
    fans = [customer(f"f{i}", f"f{i}@example.com", f"f{i};@TheShop") for i in range(6)]
    family = [
        customer("m1", "home@example.com", None, signup=date(2020, 1, 1)),
        customer("m2", "HOME@example.com", None, signup=date(2021, 1, 1)),
    ]
    stage(
        con,
        customers=shop + fans + family,
        orders=[
            order("o1", None, "noemail@shop.com", 10.0),  # a guest order on the placeholder
            order("o2", "p3", "noemail@shop.com", 20.0),  # a known id still resolves by id
            order("o3", None, "home@example.com", 30.0),  # the family's email: their person
        ],
        reviews=[
            {
                "review_id": "r1",
                "customer_id": None,
                "email": "NOEMAIL@shop.com",
                "product_id": "x",
                "rating": 5,
                "helpful_votes": 0,
                "verified_purchase": True,
                "created_at": T0,
            }
        ],
        social=[
            {
                "event_id": event,
                "actor_handle": actor,
                "event_type": "like",
                "target_handle": target,
                "post_id": None,
                "platform": "instagram",
                "occurred_at": T0,
            }
            for event, actor, target in (("e1", "theshop", "f1"), ("e2", "f2", "f3"))
        ],
        referrals=[referral("x1", "f1", referee_email="noemail@shop.com")],
    )
    merged = merge_map(con)
    assert all(merged[f"p{i}"] == f"p{i}" for i in range(7))
    assert all(merged[f"f{i}"] == f"f{i}" for i in range(6))
    assert merged["m2"] == "m1"
    assert len(people(con)) == 7 + 6 + 1
    # The till's address reaches the shop, not the person: no contact email for them.
    assert {people(con)[f"p{i}"]["email"] for i in range(7)} == {None}
    assert people(con)["m1"]["email"] == "HOME@example.com"

    orders = dict(resolved(con, "orders").select("order_id", "customer_id").iter_rows())
    assert orders == {"o1": None, "o2": "p3", "o3": "m1"}
    assert resolved(con, "reviews").row(0, named=True)["customer_id"] is None
    events = {
        r["event_id"]: (r["actor_customer_id"], r["target_customer_id"])
        for r in resolved(con, "social").iter_rows(named=True)
    }
    assert events == {"e1": (None, "f1"), "e2": ("f2", "f3")}
    assert resolved(con, "referrals").row(0, named=True)["referee_customer_id"] is None

    # The keys are listed where the engineers look, with how many profiles carry each.
    keys = con.execute(
        "select role, normalized_value, source_rows, match_rule from intermediate.identity_links "
        "where source = 'customers' and customer_id is null order by role"
    ).fetchall()
    assert keys == [("email", "noemail@shop.com", 7, None), ("handle", "theshop", 6, None)]
    assert shared_keys(con) == [
        {"key_type": "email", "keys": 1, "most_profiles": 7},
        {"key_type": "handle", "keys": 1, "most_profiles": 6},
    ]
    rates = {(r["source"], r["role"]): r for r in match_rates(con).iter_rows(named=True)}
    assert rates[("orders", "buyer")]["unresolved"] == 1


def test_the_placeholder_limit_is_a_setting(con, monkeypatch):
    """ENGAGEMENT_MAX_PROFILES_PER_KEY raised to 7: the shop's 7 profiles are one person again,
    and its guest order resolves to them. At 6 they are 7 people."""
    shop = [customer(f"p{i}", "noemail@shop.com", None) for i in range(7)]
    monkeypatch.setenv("ENGAGEMENT_MAX_PROFILES_PER_KEY", "7")
    stage(con, customers=shop, orders=[order("o1", None, "noemail@shop.com", 10.0)])
    assert set(merge_map(con).values()) == {"p0"}
    assert resolved(con, "orders").row(0, named=True)["customer_id"] == "p0"
    assert shared_keys(con) == []
    build_identity_links(con, 6)
    assert len(set(merge_map(con).values())) == 7
    assert resolved(con, "orders").row(0, named=True)["customer_id"] is None
