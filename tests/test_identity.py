"""Identity resolution rules on a tiny staged warehouse in a tmp_path DuckDB file."""

from datetime import date, datetime

import duckdb
import polars as pl
import pytest

from engagement_box.identity.links import build_identity_links, resolved

T0 = datetime(2024, 1, 1)


def _stage(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    con.register("frame_to_stage", frame.to_arrow())
    con.execute(f"create or replace table staging.{name} as select * from frame_to_stage")
    con.unregister("frame_to_stage")


@pytest.fixture()
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "test.duckdb"))
    con.execute("create schema staging")
    _stage(
        con,
        "customers",
        pl.DataFrame(
            {
                "customer_id": ["c1", "c2", "c3", "c4"],
                "email": [
                    "Ann@Example.com ",
                    "bob@example.com",
                    "ann@example.com",
                    "dee@example.com",
                ],
                "social_handles": ["@Ann_1; ann.two", None, "ann_1", " @DeeDee "],
                "signup_date": [
                    date(2021, 1, 1),
                    date(2021, 1, 1),
                    date(2020, 6, 1),
                    date(2022, 1, 1),
                ],
                "loyalty_member": [True, False, False, True],
                "marketing_consent": [True, True, False, True],
                "country": ["DE", "FR", "DE", "US"],
            }
        ),
    )
    _stage(
        con,
        "orders",
        pl.DataFrame(
            {
                "order_id": ["o1", "o2", "o3"],
                "customer_id": ["c2", "legacy-9", "legacy-8"],
                "email": ["bob@example.com", "  DEE@example.COM", "nobody@example.com"],
                "ordered_at": [T0, T0, T0],
                "net_amount": [10.0, 20.0, 30.0],
                "currency": ["EUR"] * 3,
                "status": ["completed"] * 3,
                "channel": ["web"] * 3,
            }
        ),
    )
    _stage(
        con,
        "reviews",
        pl.DataFrame(
            {
                "review_id": ["r1", "r2", "r3"],
                "customer_id": ["c4", None, None],
                "email": [None, " BOB@example.com", "ghost@example.com"],
                "product_id": ["p1"] * 3,
                "rating": [5, 4, 3],
                "helpful_votes": [0, 2, 1],
                "verified_purchase": [True, False, True],
                "created_at": [T0] * 3,
            }
        ),
    )
    _stage(
        con,
        "social",
        pl.DataFrame(
            {
                "event_id": ["s1", "s2", "s3", "s4"],
                "actor_handle": ["@deedee", "ANN.TWO", "stranger", "deedee"],
                "event_type": ["like", "comment", "like", "tweet"],
                "target_handle": ["@ann_1", "deedee", "ann.two", None],
                "post_id": [None, None, None, "post-1"],
                "platform": ["instagram"] * 4,
                "occurred_at": [T0] * 4,
            }
        ),
    )
    _stage(
        con,
        "referrals",
        pl.DataFrame(
            {
                "referral_id": ["f1", "f2", "f3"],
                "referrer_customer_id": ["c1", "c2", "zz"],
                "referee_email": [None, "DEE@example.com", "new@example.com"],
                "referee_customer_id": ["c2", None, None],
                "referred_at": [T0] * 3,
                "converted_at": [T0, T0, None],
                "referrer_reward": [5.0] * 3,
                "referee_reward": [5.0] * 3,
                "would_have_joined_anyway": [False, None, None],
            }
        ),
    )
    yield con
    con.close()


def _links(con) -> pl.DataFrame:
    return con.execute("select * from intermediate.identity_links").pl()


def _link(links: pl.DataFrame, source: str, role: str, value: str | None):
    """The link row of one distinct normalised value in a source and role."""
    value_match = (
        pl.col("normalized_value").is_null()
        if value is None
        else pl.col("normalized_value") == value
    )
    row = links.filter((pl.col("source") == source) & (pl.col("role") == role) & value_match)
    assert row.height == 1, row
    return row.row(0, named=True)


def _row(frame: pl.DataFrame, key_column: str, key: str) -> dict:
    row = frame.filter(pl.col(key_column) == key)
    assert row.height == 1, row
    return row.row(0, named=True)


def test_shared_email_goes_to_earliest_signup(con):
    build_identity_links(con)
    links = _links(con)
    # c1 and c3 share ann@example.com (case and whitespace differ): one person, c3 signed up first.
    ann = _link(links, "customers", "email", "ann@example.com")
    assert (ann["customer_id"], ann["source_rows"]) == ("c3", 2)  # two profiles carry it
    assert _link(links, "customers", "email", "bob@example.com")["source_rows"] == 1


def test_handle_normalisation_and_owner(con):
    build_identity_links(con)
    links = _links(con)
    # '@Ann_1' (c1) and 'ann_1' (c3) are the same handle; c3 signed up first.
    handle = _link(links, "customers", "handle", "ann_1")
    assert (handle["customer_id"], handle["source_rows"]) == ("c3", 2)
    # s1 '@deedee' and s4 'deedee': one link row for the normalised handle, carried by two events.
    actor = _link(links, "social", "actor", "deedee")
    assert (actor["customer_id"], actor["match_rule"], actor["source_rows"]) == ("c4", "handle", 2)
    social = resolved(con, "social")
    assert _row(social, "event_id", "s1")["target_customer_id"] == "c3"
    # 'ann.two' is c1's handle only, but c1 is merged into c3 (one person): it resolves to c3.
    assert _row(social, "event_id", "s2")["actor_customer_id"] == "c3"


def test_unresolved_rows_are_kept_and_counted(con):
    rates = build_identity_links(con)
    links = _links(con)
    stranger = _link(links, "social", "actor", "stranger")
    assert stranger["customer_id"] is None and stranger["match_rule"] is None
    assert stranger["source_rows"] == 1
    # A tweet without a target handle has no target link: 3 of the 4 events have a target.
    targets = links.filter((pl.col("source") == "social") & (pl.col("role") == "target"))
    assert targets.get_column("source_rows").sum() == 3
    actor = rates.filter((pl.col("source") == "social") & (pl.col("role") == "actor")).row(
        0, named=True
    )
    # Counted over source rows (4 events), not over distinct handles (3).
    assert (actor["rows"], actor["resolved"], actor["unresolved"]) == (4, 3, 1)
    assert actor["distinct_values"] == 3
    assert actor["match_rate"] == pytest.approx(0.75)


def test_orders_fall_back_to_email(con):
    build_identity_links(con)
    orders = resolved(con, "orders")
    o1 = _row(orders, "order_id", "o1")
    assert (o1["customer_id"], o1["match_rule"]) == ("c2", "customer_id")
    o2 = _row(orders, "order_id", "o2")
    assert (o2["customer_id"], o2["match_rule"]) == ("c4", "email")
    assert _row(orders, "order_id", "o3")["customer_id"] is None
    links = _links(con)
    by_email = _link(links, "orders", "buyer", "dee@example.com")
    assert (by_email["key_type"], by_email["customer_id"], by_email["match_rule"]) == (
        "email",
        "c4",
        "email",
    )
    # Unresolved: the key shown is the email (legacy-8 is unknown and the email matches nobody).
    unresolved = _link(links, "orders", "buyer", "nobody@example.com")
    assert unresolved["customer_id"] is None and unresolved["source_rows"] == 1


def test_review_by_email_only(con):
    build_identity_links(con)
    reviews = resolved(con, "reviews").sort("review_id")
    assert reviews.get_column("customer_id").to_list() == ["c4", "c2", None]
    assert reviews.get_column("match_rule").to_list() == ["customer_id", "email", None]
    assert reviews.height == 3  # unresolved review kept


def test_referees_by_id_else_email(con):
    build_identity_links(con)
    refs = resolved(con, "referrals").sort("referral_id")
    # c1 is merged into c3 (shared email and handle): its referral is c3's.
    assert refs.get_column("referrer_customer_id").to_list() == ["c3", "c2", None]
    assert refs.get_column("referee_customer_id").to_list() == ["c2", "c4", None]


def test_resolved_social_has_both_ends(con):
    build_identity_links(con)
    social = resolved(con, "social").sort("event_id")
    assert social.get_column("actor_customer_id").to_list() == ["c4", "c3", None, "c4"]
    assert social.get_column("target_customer_id").to_list() == ["c3", "c4", "c3", None]


def test_rebuild_is_idempotent(con):
    first = build_identity_links(con)
    second = build_identity_links(con)
    assert first.equals(second)


def test_links_hold_one_row_per_distinct_value(con):
    build_identity_links(con)
    links = _links(con)
    keys = ["source", "role", "key_type", "normalized_value"]
    assert links.select(keys).is_duplicated().sum() == 0
    assert set(links.columns) == {
        "source",
        "role",
        "key_type",
        "normalized_value",
        "customer_id",
        "match_rule",
        "source_rows",
    }


def test_match_rates_equal_the_resolved_rows(con):
    """The links (aggregated from distinct values) and the per-row resolution the metrics read
    apply the same rules: the counts per source, role and rule agree row for row."""
    rates = build_identity_links(con)
    by_role = {(r["source"], r["role"]): r for r in rates.iter_rows(named=True)}

    def check(source, role, frame, id_col, rule_col):
        rate = by_role[(source, role)]
        assert rate["rows"] == frame.height
        assert rate["resolved"] == frame.get_column(id_col).is_not_null().sum()
        rules = frame.get_column(rule_col).value_counts()
        counts = dict(zip(rules.get_column(rule_col), rules.get_column("count"), strict=True))
        assert rate["by_customer_id"] == counts.get("customer_id", 0)
        assert rate["by_email"] == counts.get("email", 0)
        assert rate["by_handle"] == counts.get("handle", 0)

    check("orders", "buyer", resolved(con, "orders"), "customer_id", "match_rule")
    check("reviews", "author", resolved(con, "reviews"), "customer_id", "match_rule")
    refs = resolved(con, "referrals")
    check("referrals", "referee", refs, "referee_customer_id", "referee_match_rule")
    assert (
        by_role[("referrals", "referrer")]["resolved"]
        == refs.get_column("referrer_customer_id").is_not_null().sum()
    )
    social = con.execute("select * from intermediate.social_resolution").pl()
    check("social", "actor", social, "actor_customer_id", "actor_match_rule")
    targets = social.filter(pl.col("has_target"))
    check("social", "target", targets, "target_customer_id", "target_match_rule")


def test_resolved_column_subset(con):
    build_identity_links(con)
    social = resolved(con, "social", columns=["actor_customer_id", "event_type"])
    assert social.columns == ["actor_customer_id", "event_type"]
    assert social.height == 4
    with pytest.raises(ValueError, match="unknown columns"):
        resolved(con, "social", columns=["actor_customer_id", "drop table x"])


def test_every_value_metric_counts_an_order_for_its_resolved_customer(con):
    """The customer summary (CLV, RFM) uses the same customer as CRV and CIV: a guest order with an
    unknown id but a known email is that customer's; an order nobody matches keeps its id."""
    from engagement_box.value.summary import calibration_holdout, customer_summary

    # A second order for c4 under its real id, so o2 (legacy-9, dee@) is c4's repeat purchase.
    con.execute(
        "insert into staging.orders by name select 'o4' as order_id, 'c4' as customer_id, "
        "'dee@example.com' as email, timestamp '2024-02-01 10:00' as ordered_at, "
        "5.0 as net_amount, 'EUR' as currency, 'completed' as status, 'web' as channel"
    )
    build_identity_links(con)
    summary = customer_summary(con, date(2024, 3, 1), resolve_identity=True).sort("customer_id")
    by_customer = {r["customer_id"]: r for r in summary.iter_rows(named=True)}
    assert set(by_customer) == {"c2", "c4", "legacy-8"}  # not legacy-9: that order is c4's
    assert (by_customer["c4"]["order_count"], by_customer["c4"]["frequency"]) == (2, 1)
    assert by_customer["legacy-8"]["order_count"] == 1  # no profile: its own customer
    holdout = calibration_holdout(con, date(2024, 1, 15), date(2024, 3, 1), resolve_identity=True)
    c4 = holdout.filter(pl.col("customer_id") == "c4").row(0, named=True)
    assert (c4["frequency"], c4["holdout_purchases"]) == (0, 1)
    # Without identity links (staged orders only) every staged id is its own customer.
    plain = customer_summary(con, date(2024, 3, 1), resolve_identity=False)
    assert set(plain["customer_id"]) == {"c2", "c4", "legacy-8", "legacy-9"}


def stage_and_link(tmp_path, customers_csv: str, orders_csv: str) -> duckdb.DuckDBPyConnection:
    """A warehouse in `tmp_path` with the two exports (CSV text, UTF-8) ingested, nothing of them
    quarantined, and the identity links built; the caller closes it."""
    from engagement_box.staging.ingestion import ingest_source

    exports = tmp_path / "exports"
    for folder, text in (("customers", customers_csv), ("orders", orders_csv)):
        (exports / folder).mkdir(parents=True)
        (exports / folder / f"{folder}.csv").write_text(text, encoding="utf-8")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    for source in ("customers", "orders"):
        report = ingest_source(con, exports, source, now=datetime(2024, 3, 1))
        assert report.rows_quarantined == 0, report
    build_identity_links(con)
    return con


def test_an_address_as_a_link_with_a_dot_or_in_full_width_is_one_person(tmp_path):
    """`mailto:ann@example.com` (copied from a web page), `ann@example.com.` (the root's dot)
    and an address typed in full-width letters passed validation as they were and stayed other
    customers than `ann@example.com` (a review). The ingest stages them as the address, and
    handles in full width as ASCII: one person each."""
    con = stage_and_link(
        tmp_path,
        "customer_id,email,social_handles,signup_date,loyalty_member,marketing_consent,country\n"
        "c1,ann@example.com,@ann_1,2024-01-01,true,true,DE\n"
        "c2,mailto:Ann@Example.com,,2024-01-02,true,true,DE\n"
        "c3,ann@example.com.,,2024-01-03,true,true,DE\n"
        "c4,\uff41\uff4e\uff4e\uff20example.com,,2024-01-04,true,true,DE\n"
        "c5,bob@example.com,\uff20\uff21\uff4e\uff4e_1,2024-01-05,true,true,DE\n",
        "order_id,customer_id,email,ordered_at,net_amount,currency,status,channel\n"
        "o1,guest-1,MAILTO:ann@example.com.,2024-02-01 10:00:00,10,EUR,completed,web\n",
    )
    try:
        assert con.execute("SELECT email FROM staging.customers ORDER BY customer_id").fetchall() == [
            ("ann@example.com",), ("Ann@Example.com",), ("ann@example.com",),
            ("ann@example.com",), ("bob@example.com",),
        ]  # fmt: skip
        merged = con.execute(
            "SELECT customer_id, resolved_customer_id FROM intermediate.customer_merge ORDER BY 1"
        ).fetchall()
        orders = resolved(con, "orders")
    finally:
        con.close()
    # c5 holds the handle ann_1 too (in full width): an email and a handle link c1 to c5
    assert {person for _, person in merged} == {"c1"}
    assert _row(orders, "order_id", "o1")["customer_id"] == "c1"


def test_invisible_characters_do_not_split_a_person(tmp_path):
    """A zero-width space or byte-order mark pasted into an email address, a handle or at the end
    of an id (text copied from a web page, a spreadsheet's "UTF-8 with BOM") kept one person as
    two customers, or quarantined a profile whose handle list held one: the ingest now removes
    them, and the order resolves to its profile."""
    con = stage_and_link(
        tmp_path,
        "customer_id,email,social_handles,signup_date,loyalty_member,marketing_consent,country\n"
        "\ufeffc1,ann.lee@example.com,,2024-01-01,true,true,DE\n"
        "c2,bob@example.com,@bob;\u200b@Bob\u2060by,2024-01-01,true,true,DE\n",
        "order_id,customer_id,email,ordered_at,net_amount,currency,status,channel\n"
        "o1,legacy-1,ann\u200b.lee@example.com\u200c,2024-02-01 10:00:00,10,EUR,completed,web\n"
        "o2,c2\u200b,,2024-02-01 10:00:00,10,EUR,completed,web\n",
    )
    try:
        assert con.execute("SELECT count(*) FROM staging.orders").fetchone() == (2,)
        assert con.execute(
            "SELECT customer_id, social_handles FROM staging.customers ORDER BY 1"
        ).fetchall() == [("c1", None), ("c2", "@bob;@Bobby")]
        orders = resolved(con, "orders")
    finally:
        con.close()
    assert (
        _row(orders, "order_id", "o1")["customer_id"],
        _row(orders, "order_id", "o1")["match_rule"],
    ) == ("c1", "email")
    assert _row(orders, "order_id", "o2")["customer_id"] == "c2"
