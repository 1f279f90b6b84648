"""Erasure: one person leaves every table, every retained version and every audience file."""

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import given

from engagement_box.activation.audiences import build_audiences, write_audiences
from engagement_box.governance import erasure, readers, versions
from engagement_box.identity.links import build_identity_links
from engagement_box.sql import load_sql
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import ingest_source
from engagement_box.staging.reconciliation import reconcile
from tests.conftest import write_csv

# Jane has two staged profiles (the second with her email in another case and padded), a
# quarantined profile with the same email, a guest order and a review by email only, handles used
# as actor and as target, and is both a referrer and a referee. Bob and Carol must stay.
CUSTOMERS = [
    ("JANE-001", "Jane.Doe@Example.com", "@JaneD;jd_photos", "2023-01-01", "US"),
    ("BOB-002", "bob@example.com", "@bobby", "2023-02-01", "US"),
    ("JANE-003", "  jane.doe@EXAMPLE.com ", "", "2023-03-01", "US"),
    ("CAROL-004", "-carol@example.com", "@carol", "2023-04-01", "DE"),
    ("JANE-005", "jane.doe@example.com", "", "2023-05-01", "USA"),  # quarantined (country)
]
ORDERS = [
    ("o1", "JANE-001", "Jane.Doe@Example.com", "10.00"),
    ("o2", "BOB-002", "bob@example.com", "20.00"),
    ("o3", "GUEST-9", "  JANE.DOE@example.com", "30.00"),  # guest order by email
    ("o4", "JANE-001", "", "12,50"),  # quarantined (amount)
    ("o5", "CAROL-004", "-carol@example.com", "40.00"),
    ("o6", "JANE-005", "", "50.00"),  # by the quarantined profile's id
]
REVIEWS = [
    ("r1", "", "Jane.Doe@example.com"),
    ("r2", "BOB-002", ""),
]
SOCIAL = [
    ("e1", "@JaneD", "like", "@bobby", "instagram"),
    ("e2", "bobby", "comment", "JANED", "instagram"),
    ("e3", "bobby", "tweet", "", "twitter"),
    ("e4", "carol", "like", "jd_photos", "instagram"),
    ("e5", "jd_photos", "like", "carol", "myspace"),  # quarantined (platform)
    ("e6", "carol", "share", "bobby", "tiktok"),
]
REFERRALS = [
    ("f1", "BOB-002", "jane.doe@example.com", ""),
    ("f2", "JANE-001", "friend@example.com", ""),
    ("f3", "BOB-002", "", "CAROL-004"),
]
JANE_IDS = {"JANE-001", "JANE-003", "JANE-005"}
JANE_EMAIL = "jane.doe@example.com"
JANE_HANDLES = {"janed", "jd_photos"}
TOKENS = [t.lower() for t in (*JANE_IDS, JANE_EMAIL, *JANE_HANDLES)]
ERASED_PER_SOURCE = {"customers": 3, "orders": 4, "reviews": 1, "social": 4, "referrals": 2}


def write_exports(exports: Path) -> None:
    write_csv(
        exports / "customers" / "customers.csv",
        [
            {
                "customer_id": cid,
                "email": email,
                "social_handles": handles,
                "signup_date": signup,
                "loyalty_member": "true",
                "marketing_consent": "true",
                "country": country,
            }
            for cid, email, handles, signup, country in CUSTOMERS
        ],
    )
    write_csv(
        exports / "orders" / "orders.csv",
        [
            {
                "order_id": oid,
                "customer_id": cid,
                "email": email,
                "ordered_at": "2024-01-02T10:00:00",
                "net_amount": amount,
                "currency": "USD",
                "status": "completed",
                "channel": "web",
            }
            for oid, cid, email, amount in ORDERS
        ],
    )
    write_csv(
        exports / "reviews" / "reviews.csv",
        [
            {
                "review_id": rid,
                "customer_id": cid,
                "email": email,
                "product_id": "p1",
                "rating": "5",
                "helpful_votes": "0",
                "verified_purchase": "true",
                "created_at": "2024-01-03",
            }
            for rid, cid, email in REVIEWS
        ],
    )
    write_csv(
        exports / "social" / "social.csv",
        [
            {
                "event_id": eid,
                "actor_handle": actor,
                "event_type": event,
                "target_handle": target,
                "post_id": "",
                "platform": platform,
                "occurred_at": "2024-01-04",
            }
            for eid, actor, event, target, platform in SOCIAL
        ],
    )
    write_csv(
        exports / "referrals" / "referrals.csv",
        [
            {
                "referral_id": fid,
                "referrer_customer_id": referrer,
                "referee_email": referee_email,
                "referee_customer_id": referee_id,
                "referred_at": "2024-01-05",
                "converted_at": "",
                "referrer_reward": "5",
                "referee_reward": "5",
                "would_have_joined_anyway": "",
            }
            for fid, referrer, referee_email, referee_id in REFERRALS
        ],
    )


def publish_version(con: duckdb.DuckDBPyConnection, run: str, bonus: float) -> None:
    """Work tables like the pipeline's (per-customer rows, an aggregate), then a publish."""
    versions.ensure_version_tables(con)
    con.execute(
        "CREATE OR REPLACE TABLE work.customer_scores AS "
        "SELECT customer_id, email, 1.0 + $bonus AS score FROM staging.customers",
        {"bonus": bonus},
    )
    con.execute(
        "CREATE OR REPLACE TABLE work.referral_graph AS "
        "SELECT referrer_customer_id, referee_customer_id, referee_email FROM staging.referrals"
    )
    con.execute(
        "CREATE OR REPLACE TABLE work.persona_profile AS "
        "SELECT 'all' AS persona, count(*) AS customers FROM staging.customers"
    )
    versions.publish(
        con,
        ["customer_scores", "referral_graph", "persona_profile"],
        run_id=run,
        partition_key=None,
        as_of=None,
        settings={"bonus": bonus},
    )


@pytest.fixture(scope="module")
def built_once(tmp_path_factory) -> Path:
    """A warehouse built by the real ingest, identity links, two published versions, audiences;
    built once per module (seconds), each test erasing in its own copy (`built`)."""
    root = tmp_path_factory.mktemp("erasure_built")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(erasure.SALT_ENV, raising=False)
        exports = root / "exports"
        write_exports(exports)
        con = duckdb.connect(str(root / "w.duckdb"))
        try:
            for name in SOURCES:
                ingest_source(con, exports, name)
            build_identity_links(con)
            publish_version(con, "run1", 0.0)
            publish_version(con, "run2", 1.0)
            customers = con.execute(
                "SELECT customer_id, email, marketing_consent FROM staging.customers"
            ).pl()
        finally:
            con.close()
    segments = customers.select("customer_id", pl.lit("Champions").alias("segment"))
    write_audiences(
        build_audiences(customers, segments), root / "audiences" / "rfm_segment", "champions"
    )
    return root


@pytest.fixture
def built(built_once: Path, tmp_path: Path, monkeypatch):
    """This test's copy of `built_once` in tmp_path: (connection, exports, audience folder)."""
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    for folder in ("exports", "audiences"):  # modification times kept: the same files
        shutil.copytree(built_once / folder, tmp_path / folder)
    shutil.copy2(built_once / "w.duckdb", tmp_path / "w.duckdb")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield con, tmp_path / "exports", tmp_path / "audiences"
    con.close()


def sql_normalized(con: duckdb.DuckDBPyConnection, texts: list, kind: str) -> list:
    """`texts` through erasure's SQL normalisation (`erasure_normalized`) on `con`, which has
    identity's normalisation macros."""
    con.execute(load_sql("erasure/create_trim_macro"))
    con.execute(load_sql("erasure/create_normalize_macro"))
    return con.execute(
        "SELECT list_transform($t::VARCHAR[], v -> erasure_normalized(v, $kind))",
        {"t": texts, "kind": kind},
    ).fetchone()[0]


# Keys as exports hold them: ASCII with edge whitespace, case, `mailto:`, trailing dots and
# handles' `@`, now and then a character outside ASCII (no-break space, zero-width space,
# full-width `＠`, a decomposed accent) that sends a key down the other path.
KEY_TEXT = st.lists(
    st.sampled_from(
        ["a", "Z", "0", ".", "@", "_", "-", "+", " ", "\t", "\n", "\x0b", "\f", "\r"]
        + ["mailto:", "MAILTO:", "Ann", "shop.com"]
        + ["\u00a0", "\u200b", "\uff20", "e\u0301", "\u00e9"]
    ),
    max_size=8,
).map("".join)


@given(st.lists(KEY_TEXT, max_size=40))
def test_erasure_normalises_a_key_of_ascii_as_its_every_character_rule_does(texts):
    """Erasure's SQL normalisation takes a shortcut for keys of ASCII characters only (most
    keys): it must find the same key as the rules for any text, for every kind, so a person's
    rows are found whatever path their key took."""
    con = duckdb.connect()
    try:
        erasure._create_normalize_macros(con)  # identity's macros, then erasure's
        for kind in ("email", "handle", "customer_id"):
            fast, every = con.execute(
                "SELECT list_transform($t::VARCHAR[], v -> erasure_normalized(v, $kind)), "
                "list_transform($t::VARCHAR[], v -> erasure_normalized_any(v, $kind))",
                {"t": texts, "kind": kind},
            ).fetchone()
            assert fast == every, kind
    finally:
        con.close()


@given(st.lists(KEY_TEXT, min_size=1, max_size=30), st.lists(KEY_TEXT, max_size=3))
def test_erasure_finds_a_key_without_normalising_every_value_as_it_does_normalising_all(
    texts, others
):
    """`erasure_holds` normalises only the values whose lower case holds one of the person's
    keys (or that are not all ASCII): it must match exactly the values whose normalised key is
    one of them, for every kind, with the person's keys taken from the values themselves (each
    value's own key) and with keys of other text; so must the prefilter over a profile's list
    of handles joined by ';'."""
    con = duckdb.connect()
    try:
        erasure._create_normalize_macros(con)
        for kind in ("email", "handle", "customer_id"):
            keys = [k for k in sql_normalized(con, texts[:3] + others, kind) if k is not None]
            held, normalised = con.execute(
                "SELECT list_transform($t::VARCHAR[], v -> erasure_holds(v, $k::VARCHAR[], $kind)),"
                " list_transform($t::VARCHAR[], "
                "v -> coalesce(list_contains($k::VARCHAR[], erasure_normalized(v, $kind)), false))",
                {"t": texts, "k": keys, "kind": kind},
            ).fetchone()
            assert [bool(h) for h in held] == normalised, (kind, keys)
        keys = [k for k in sql_normalized(con, texts, "handle") if k is not None]
        listed = ";".join(texts)
        in_list = con.execute(
            "SELECT list_has_any($k::VARCHAR[], list_transform(string_split($l, ';'), "
            "h -> erasure_normalized(h, 'handle')))",
            {"k": keys, "l": listed},
        ).fetchone()[0]
        if in_list:
            assert con.execute(
                "SELECT erasure_may_hold($l, $k::VARCHAR[])", {"k": keys, "l": listed}
            ).fetchone()[0]
    finally:
        con.close()


def test_erasure_normalises_the_keys_exports_write_as_erasure_requests_name_them():
    """The shortcut on the forms the contracts name: the same key from a request and from raw
    text with `mailto:`, case, a root's dot and any whitespace the ingest trims."""
    con = duckdb.connect()
    erasure._create_normalize_macros(con)  # identity's macros (sql_normalized adds erasure's)
    cases = {
        "email": ([" MailTo:Ann.Lee@Shop.COM. \t", "\x0bann.lee@shop.com .\r"], "ann.lee@shop.com"),
        "handle": (["\t@Anna_1 ", "@ANNA_1"], "anna_1"),
        "customer_id": (["\x0c C-001\n", "C-001"], "C-001"),
    }
    for kind, (texts, key) in cases.items():
        assert sql_normalized(con, texts, kind) == [key, key], kind
        assert sql_normalized(con, [" \t"], kind) == [None]
    con.close()


def mentions(con: duckdb.DuckDBPyConnection, tokens: list[str]) -> dict[str, int]:
    """Rows per table or view (any schema) with a text, JSON or list cell containing a token."""
    columns = con.execute(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
        "WHERE c.table_catalog = current_database() "
        "AND (c.data_type IN ('VARCHAR', 'JSON') OR c.data_type LIKE 'VARCHAR[]%')"
    ).fetchall()
    found: dict[str, int] = {}
    for schema, table, column in columns:
        name = f'"{schema}"."{table}"'  # names read from the catalog, test only
        text = f'lower(CAST("{column}" AS VARCHAR))'
        rows = con.execute(
            f"SELECT count(*) FROM {name} "
            f"WHERE len(list_filter($tokens::VARCHAR[], lambda t: contains({text}, t))) > 0",
            {"tokens": tokens},
        ).fetchone()[0]
        if rows:
            found[f"{schema}.{table}.{column}"] = rows
    return found


def table_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    names = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() ORDER BY 1, 2"
    ).fetchall()
    return {
        f"{s}.{t}": con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0] for s, t in names
    }


def all_audience_text(audience_dir: Path) -> str:
    parts = [p.read_text() for p in audience_dir.rglob("*.csv")]
    parts += [pl.read_parquet(p).write_csv() for p in audience_dir.rglob("*.parquet")]
    return "\n".join(parts).lower()


def test_normalisation_and_hashes_ignore_case_and_whitespace():
    assert erasure.normalize("  Jane.Doe@Example.COM\t", "email") == JANE_EMAIL
    assert erasure.normalize(" @@JaneD ", "handle") == "janed"
    assert erasure.normalize(" JANE-001 ", "customer_id") == "JANE-001"  # ids keep their case
    assert erasure.normalize("   ", "email") is None
    assert erasure.subject_hash(" JANE.doe@example.com", "email", "s") == erasure.subject_hash(
        JANE_EMAIL, "email", "s"
    )
    # The kind is part of the subject, and the salt changes every hash.
    assert erasure.subject_hash("x", "handle", "s") != erasure.subject_hash("x", "customer_id", "s")
    assert erasure.subject_hash("x", "handle", "s") != erasure.subject_hash("x", "handle", "t")
    with pytest.raises(ValueError):
        erasure.subject_hash(" ", "email", "s")


def test_erasure_deletes_what_a_killed_export_left_in_the_audience_folder(built):
    """A run killed while it wrote the audience files leaves `.<kind>.building` (the new files)
    or `.<kind>.old` (the replaced ones) beside the folders, and a killed erasure a partial
    file; the next export deletes them, but the erasure skipped hidden paths, so the person
    stayed in them until then."""
    con, _, audience_dir = built
    shutil.copytree(audience_dir / "rfm_segment", audience_dir / ".rfm_segment.building")
    shutil.copytree(audience_dir / "rfm_segment", audience_dir / ".rfm_segment.old")
    shutil.copy(
        audience_dir / "rfm_segment" / "champions.csv",
        audience_dir / "rfm_segment" / ".champions.csv.erasure-tmp",
    )
    elsewhere = audience_dir / ".not_ours"  # a shared folder's other files stay
    shutil.copytree(audience_dir / "rfm_segment", elsewhere)
    assert "JANE-001" in (audience_dir / ".rfm_segment.old" / "champions.csv").read_text()

    erasure.erase(con, email=JANE_EMAIL, audience_dir=audience_dir)

    left = sorted(
        p.relative_to(audience_dir).as_posix()
        for p in audience_dir.rglob("*")
        if p.is_file() and not p.is_relative_to(elsewhere)
    )
    assert left == ["rfm_segment/champions.csv", "rfm_segment/champions.parquet"]
    assert "jane-001" not in all_audience_text(audience_dir / "rfm_segment")
    assert "JANE-001" in (elsewhere / "champions.csv").read_text()

    # Killed between the swap's two renames: the kind's folder is `.<kind>.old` alone. It is
    # the kind's files (put back, without the person), not a leftover deleted with them.
    (audience_dir / "rfm_segment").rename(audience_dir / ".rfm_segment.old")
    shutil.copytree(audience_dir / ".rfm_segment.old", audience_dir / ".rfm_segment.building")
    erasure.erase(con, customer_id="BOB-002", audience_dir=audience_dir)
    assert sorted(p.name for p in (audience_dir / "rfm_segment").iterdir()) == [
        "champions.csv",
        "champions.parquet",
    ]
    assert not (audience_dir / ".rfm_segment.old").exists()
    assert "bob-002" not in all_audience_text(audience_dir / "rfm_segment")


def test_an_erasure_killed_before_the_audience_files_is_finished_by_the_same_request(built):
    """A privacy review: an erasure killed after its commit, before it rewrote the audience
    files, left the person in them; the same request again found no profile (gone with the
    commit), said no audience row matched, and left them there until the next run."""
    con, _, audience_dir = built
    erasure.erase(con, handle="@JaneD")  # committed; killed before the audience files
    assert "jane-001" in all_audience_text(audience_dir)

    # The files hold no handle: her ids and email were found through her profiles, now gone.
    again = erasure.erase(con, handle="@JaneD", audience_dir=audience_dir)
    assert again.audience_rows_removed and again.found
    text = all_audience_text(audience_dir)
    assert "jane-001" not in text and JANE_EMAIL not in text
    assert "bob-002" in text  # no one else


def test_warehouse_fixture_holds_the_person_everywhere(built):
    con, _, audience_dir = built
    found = mentions(con, TOKENS)
    for table in ("staging.customers", "staging.orders", "staging.reviews", "staging.social"):
        assert any(k.startswith(table) for k in found), table
    assert any(k.startswith("staging.quarantine") for k in found)
    assert any(k.startswith("intermediate.identity_links") for k in found)
    assert any(k.startswith("history.customer_scores") for k in found)
    assert JANE_EMAIL in all_audience_text(audience_dir)


def test_erase_by_email_removes_the_person_from_every_table_and_version(built):
    con, _, audience_dir = built
    before_other = con.execute(
        "SELECT (SELECT count(*) FROM history.customer_scores WHERE customer_id = 'BOB-002'), "
        "(SELECT count(*) FROM marts.persona_profile), (SELECT count(*) FROM marts.snapshots)"
    ).fetchone()

    report = erasure.erase(
        con, email="  JANE.Doe@example.COM ", audience_dir=audience_dir, salt="pepper"
    )

    assert report.found and report.checkpointed
    # her three profiles, and the guest id of her guest order (no profile has it)
    assert report.subjects == {"customer_id": 4, "email": 1, "handle": 2}
    assert (report.guest_ids_followed, report.guest_ids_shared) == (1, 0)
    assert report.erased_rows == ERASED_PER_SOURCE
    # the versions' rows (history.<mart> views them): two profiles, two versions
    assert report.rows_deleted["history_rows.customer_scores"] == 2 * 2
    assert report.rows_deleted["history_rows.referral_graph"] == 2 * 2  # referee and referrer
    assert report.rows_deleted["staging.quarantine"] == 3
    assert report.audience_rows_removed == {
        "rfm_segment/champions.csv": 2,
        "rfm_segment/champions.parquet": 2,
    }
    # No table, view or retained version mentions her any more.
    assert mentions(con, TOKENS) == {}
    assert con.execute("SELECT count(*) FROM marts.customer_scores_at(1)").fetchone()[0] == 2

    # Everybody else is untouched.
    remaining = {
        table: sorted(r[0] for r in con.execute(f"SELECT {key} FROM staging.{table}").fetchall())
        for table, key in (
            ("customers", "customer_id"),
            ("orders", "order_id"),
            ("reviews", "review_id"),
            ("social", "event_id"),
            ("referrals", "referral_id"),
        )
    }
    assert remaining == {
        "customers": ["BOB-002", "CAROL-004"],
        "orders": ["o2", "o5"],
        "reviews": ["r2"],
        "social": ["e3", "e6"],
        "referrals": ["f3"],
    }
    after_other = con.execute(
        "SELECT (SELECT count(*) FROM history.customer_scores WHERE customer_id = 'BOB-002'), "
        "(SELECT count(*) FROM marts.persona_profile), (SELECT count(*) FROM marts.snapshots)"
    ).fetchone()
    assert after_other == before_other

    # Reconciliation: rows read = staged + quarantined + erased, per source.
    for name in SOURCES:
        rec = reconcile(con, name)
        assert rec.holds, (name, rec)
        assert rec.rows_erased == ERASED_PER_SOURCE.get(name, 0)

    # The log: hashes, counts, no personal data.
    log = con.execute("SELECT * FROM staging.erasure_log").pl()
    assert log.height == 1
    expected = {erasure.subject_hash(v, "customer_id", "pepper") for v in {*JANE_IDS, "GUEST-9"}}
    expected |= {erasure.subject_hash(JANE_EMAIL, "email", "pepper")}
    expected |= {erasure.subject_hash(h, "handle", "pepper") for h in JANE_HANDLES}
    assert set(log["subject_hashes"][0]) == expected == erasure.erased_subject_hashes(con)
    assert json.loads(log["rows_deleted"][0]) == report.rows_deleted
    assert not any(t in str(log.to_dicts()).lower() for t in TOKENS)

    # Audience files: she is gone, the others stay, the CSV written through the neutralisation.
    text = all_audience_text(audience_dir)
    assert not any(t in text for t in TOKENS)
    csv_rows = pl.read_csv(audience_dir / "rfm_segment" / "champions.csv", infer_schema=False)
    # (an address starting with - and holding nothing a formula needs is written exact:
    # `test_audiences.py`, where a neutralised cell stays so through an erasure's rewrite)
    assert sorted(csv_rows["email"]) == ["-carol@example.com", "bob@example.com"]
    parquet_rows = pl.read_parquet(audience_dir / "rfm_segment" / "champions.parquet")
    assert sorted(parquet_rows["email"]) == ["-carol@example.com", "bob@example.com"]


def test_each_files_counts_add_up_after_an_erasure(built):
    """Per export file, rows read = staged + quarantined + erased, and `staging.ingested_files`
    says how many rows each file stages and quarantines now: after an erasure it went on saying
    what the ingest staged (a file of two profiles, one erased: read 2, staged 2, erased 1, and
    one row in the table; a review)."""
    con, _, _ = built
    erasure.erase(con, email=JANE_EMAIL, salt="pepper")
    ledger = con.execute(
        """
        SELECT f.source, f.source_file, f.rows_read, f.rows_staged, f.rows_quarantined,
            coalesce(e.rows, 0)
        FROM staging.ingested_files AS f
        LEFT JOIN staging.erased_rows AS e USING (source, source_file)
        ORDER BY ALL
        """
    ).fetchall()
    assert any(erased for *_, erased in ledger)
    for source, file, read, staged_rows, quarantined, erased in ledger:
        assert read == staged_rows + quarantined + erased, (source, file)
        in_table = con.execute(
            f"SELECT count(*) FROM staging.{source} WHERE source_file = ?", [file]
        ).fetchone()[0]
        in_quarantine = con.execute(
            "SELECT count(*) FROM staging.quarantine WHERE source = ? AND source_file = ?",
            [source, file],
        ).fetchone()[0]
        assert (staged_rows, quarantined) == (in_table, in_quarantine), (source, file)


def test_suppression_mask_flags_the_erased_person_in_raw_files(built):
    con, exports, _ = built
    erasure.erase(con, customer_id="JANE-001", salt="pepper")
    hashes = erasure.erased_subject_hashes(con, "pepper")
    expected = {
        "customers": [True, False, True, False, True],
        "orders": [True, False, True, True, False, True],
        "reviews": [True, False],
        "social": [True, True, False, True, True, False],
        "referrals": [True, True, False],
    }
    for name, flags in expected.items():
        raw = pl.read_csv(exports / name / f"{name}.csv", infer_schema=False)
        assert erasure.suppression_mask(raw, name, hashes, "pepper").to_list() == flags, name
        # Nothing is suppressed without hashes, or with another salt.
        assert not erasure.suppression_mask(raw, name, set(), "pepper").any()
        assert not erasure.suppression_mask(raw, name, hashes, "salt").any()
    # A typed frame works the same way.
    typed = con.execute("SELECT * FROM staging.orders").pl()
    assert not erasure.suppression_mask(typed, "orders", hashes, "pepper").any()


def test_erasure_of_an_unknown_person_is_logged_and_deletes_nothing(built):
    con, _, _ = built
    before = mentions(con, ["bob@example.com"])
    report = erasure.erase(con, email="Nobody@Example.com", salt="pepper")
    assert not report.found and report.rows_deleted == {} and report.total_rows == 0
    assert erasure.erased_subject_hashes(con) == {
        erasure.subject_hash("nobody@example.com", "email", "pepper")
    }
    assert mentions(con, ["bob@example.com"]) == before
    for name in SOURCES:
        assert reconcile(con, name).rows_erased == 0


def test_only_an_erasure_that_deleted_rows_changes_what_versions_are_computed_from(built):
    """A request matching nobody (a mistyped email) made the next run recompute everything and
    publish a copy of the standing version, pushing real versions out of retention."""
    con, _, _ = built

    def fingerprint() -> str:
        return versions.inputs_fingerprint(con, as_of="2024-12-31", settings={"a": 1})

    before = fingerprint()
    erasure.erase(con, email="nobody@example.com")
    assert fingerprint() == before
    erasure.erase(con, customer_id="BOB-002")
    assert fingerprint() != before


def test_salt_is_created_once_per_warehouse_and_a_wrong_salt_is_refused(built, monkeypatch):
    con, _, _ = built
    first = erasure.erase(con, customer_id="BOB-002")
    salt = erasure.resolve_salt(con)
    assert len(salt) == 64
    assert first.subject_hashes == sorted(
        {
            erasure.subject_hash("BOB-002", "customer_id", salt),
            erasure.subject_hash("bob@example.com", "email", salt),
            erasure.subject_hash("bobby", "handle", salt),
        }
    )
    erasure.erase(con, email="nobody@example.com")
    assert con.execute("SELECT count(*) FROM staging.erasure_salt").fetchone()[0] == 1
    assert erasure.resolve_salt(con) == salt
    assert len(erasure.erased_subject_hashes(con, salt)) == 4

    # Another salt (argument or environment) must not silently make unmatchable hashes.
    monkeypatch.setenv(erasure.SALT_ENV, "another")
    with pytest.raises(erasure.ErasureError):
        erasure.erased_subject_hashes(con, erasure.resolve_salt(con))
    with pytest.raises(erasure.ErasureError):
        erasure.erase(con, customer_id="CAROL-004")
    assert con.execute("SELECT count(*) FROM staging.erasure_log").fetchone()[0] == 2
    assert (
        con.execute(
            "SELECT count(*) FROM staging.customers WHERE customer_id = 'CAROL-004'"
        ).fetchone()[0]
        == 1
    )


def test_each_erasure_writes_the_register_the_spark_engine_reads(built, tmp_path, monkeypatch):
    """Beside the working database: every logged hash with the salt that made them, the
    warehouse's own salt stored; a salt given by the environment is not written down, and a
    reader without it is refused rather than letting erased people back."""
    con, exports, _ = built
    register = erasure.register_path(tmp_path / "w.duckdb")
    erasure.erase(con, customer_id="BOB-002")
    erasure.erase(con, email="nobody@example.com")
    hashes, salt = erasure.read_register(register)
    assert hashes == erasure.erased_subject_hashes(con) and salt == erasure.resolve_salt(con)
    raw = pl.read_csv(exports / "customers" / "customers.csv", infer_schema=False)
    assert erasure.suppression_mask(raw, "customers", set(hashes), salt).sum() == 1  # Bob

    monkeypatch.setenv(erasure.SALT_ENV, "pepper")
    fresh = tmp_path / "fresh.duckdb"
    with duckdb.connect(str(fresh)) as other:
        erasure.erase(other, customer_id="BOB-002")
    stored = json.loads(erasure.register_path(fresh).read_text())
    assert stored["salt"] is None and stored["subject_hashes"]
    assert erasure.read_register(erasure.register_path(fresh))[1] == "pepper"
    monkeypatch.delenv(erasure.SALT_ENV)
    with pytest.raises(erasure.ErasureError):
        erasure.read_register(erasure.register_path(fresh))
    assert erasure.read_register(tmp_path / "none.json") == (frozenset(), "")


def test_a_register_missing_erasures_is_written_again_for_the_spark_engine(built, tmp_path):
    """A warehouse whose people were erased before registers existed (or whose register was
    lost) gets one back: from the next DuckDB ingest, even with no new file, and from the Spark
    run itself, which reads the working database when there is no register at all."""
    con, exports, _ = built
    working = tmp_path / "w.duckdb"
    register = erasure.register_path(working)
    erasure.erase(con, customer_id="BOB-002")
    logged = erasure.erased_subject_hashes(con)
    register.unlink()  # as on a warehouse erased before registers were written

    for name in SOURCES:  # nothing new to read: every file is staged as it is
        report = ingest_source(con, exports, name)
        assert report.files_skipped == report.files_seen and not report.files_ingested
    assert erasure.read_register(register) == (frozenset(logged), erasure.resolve_salt(con))

    register.write_text(json.dumps({"salt_fingerprint": "", "salt": None, "subject_hashes": []}))
    assert erasure.refresh_register(con)  # behind the log: written again
    assert erasure.read_register(register)[0] == logged
    assert not erasure.refresh_register(con)  # whole: left as it is

    # The Spark engine's staging asks `register_of`: with no register, it reads the database.
    register.unlink()
    with pytest.raises(erasure.ErasureError, match="cannot be read"):
        erasure.register_of(working)  # held open read-write (here by this process)
    con.close()
    hashes, salt = erasure.register_of(working)
    assert hashes == logged and register.exists()
    raw = pl.read_csv(exports / "customers" / "customers.csv", infer_schema=False)
    assert erasure.suppression_mask(raw, "customers", set(hashes), salt).sum() == 1  # Bob
    assert erasure.register_of(tmp_path / "never.duckdb") == (frozenset(), "")


def test_erase_needs_a_subject(built):
    con, _, _ = built
    with pytest.raises(ValueError):
        erasure.erase(con)
    with pytest.raises(ValueError):
        erasure.erase(con, email="   ")


def test_compact_rewrites_the_file_without_freed_blocks(built, tmp_path):
    con, _, _ = built
    erasure.erase(con, email=JANE_EMAIL, salt="pepper")
    tables_before = table_rows(con)
    con.close()
    path = erasure.compact(tmp_path / "w.duckdb")
    assert JANE_EMAIL.encode() not in path.read_bytes()
    con = duckdb.connect(str(path))
    try:
        assert table_rows(con) == tables_before
        assert con.execute("SELECT count(*) FROM marts.customer_scores_at(2)").fetchone()[0] == 2
        assert reconcile(con, "orders").holds
    finally:
        con.close()


def test_an_erased_person_does_not_come_back_when_exports_are_ingested_again(built):
    """Raw exports still hold the person: a changed file and a new file are re-ingested, and the
    ingest counts her rows as erased instead of staging or quarantining them."""
    con, exports, _ = built
    erasure.erase(con, email=" JANE.DOE@example.com")

    orders = exports / "orders" / "orders.csv"
    orders.write_text(
        orders.read_text() + "o9,BOB-002,bob@example.com,2024-02-01,5.00,USD,completed,web\n"
    )
    write_csv(
        exports / "orders" / "late.csv",
        [{"order_id": "o10", "customer_id": "JANE-001", "email": "", "ordered_at": "2024-03-01",
          "net_amount": "9.00", "currency": "USD", "status": "completed", "channel": "web"}],
    )  # fmt: skip
    for name in SOURCES:
        ingest_source(con, exports, name)

    for name in SOURCES:
        _, read, staged, quarantined, erased = reconcile(con, name)
        assert read == staged + quarantined + erased, name
    staging_only = {k: v for k, v in mentions(con, TOKENS).items() if k.startswith("staging.")}
    assert staging_only == {}
    assert con.execute("SELECT count(*) FROM staging.orders WHERE order_id = 'o9'").fetchone() == (
        1,
    )
    erased_orders = con.execute(
        "SELECT sum(rows) FROM staging.erased_rows WHERE source = 'orders'"
    ).fetchone()[0]
    assert erased_orders >= 4 + 1  # her earlier rows of the changed file, and the new file's row


def test_her_address_written_as_a_link_with_a_dot_or_in_full_width_stays_out(built):
    """After her erasure, a later export held her address as `mailto:jane.doe@example.com`,
    `jane.doe@example.com.` and in full-width letters: each was staged, so she was back in
    the marts, and a second erase of the same address said nothing matched (a review). The
    ingest reads each as the address, so suppression keeps the rows out; the three
    normalisations (Python, polars, SQL) agree on them."""
    con, exports, _ = built
    erasure.erase(con, email=JANE_EMAIL)
    written = [
        "mailto:Jane.Doe@example.com",
        "jane.doe@example.com.",
        "\uff4aane.doe@example.com",  # a full-width j
        "MAILTO:\uff2a\uff21\uff2e\uff25.doe\uff20example\uff0ecom. ",
    ]
    write_csv(
        exports / "orders" / "links.csv",
        [{"order_id": f"o3{i}", "customer_id": f"G-{i}", "email": email,
          "ordered_at": "2024-03-01", "net_amount": "9.00", "currency": "USD",
          "status": "completed", "channel": "web"} for i, email in enumerate(written)]
        + [{"order_id": "o39", "customer_id": "G-9", "email": "mailto:bob@example.com",
            "ordered_at": "2024-03-01", "net_amount": "9.00", "currency": "USD",
            "status": "completed", "channel": "web"}],
    )  # fmt: skip
    ingest_source(con, exports, "orders")
    assert con.execute(
        "SELECT order_id, email FROM staging.orders WHERE source_file LIKE '%links.csv'"
    ).fetchall() == [("o39", "bob@example.com")]
    erased = "SELECT rows FROM staging.erased_rows WHERE source_file LIKE '%links.csv'"
    assert con.execute(erased).fetchall() == [(4,)]
    in_sql = sql_normalized(con, written, "email")
    in_polars = pl.DataFrame({"e": written}).select(erasure.normalized_expr("e", "email"))["e"]
    in_python = [erasure.normalize(t, "email") for t in written]
    assert in_sql == in_polars.to_list() == in_python == [JANE_EMAIL] * 4
    handle = "\uff20\uff2aaneD"  # a full-width @ and J
    (sql_handle,) = con.execute("SELECT erasure_normalized($h, 'handle')", {"h": handle}).fetchone()
    assert erasure.normalize(handle, "handle") == sql_handle == "janed"


def test_keys_folded_by_rules_13_still_meet_erasures_logged_before_and_every_form_is_read():
    """A code review of rules 13: (1) an erasure logged before hashed a full-width or dotted
    address as written, and after the upgrade took the files in again the ingest's folded key
    no longer met it: her review by email came back; (2) a full-width `；` between a profile's
    handles became a separator once staged, where erasure split the raw text before folding;
    (3) a full-width `＠` in a misplaced or longer value was not looked at; (4) whitespace
    before the root's dot stayed on the staged address."""
    from engagement_box.staging.validation import normalise_text

    salt = "s"
    logged_before = erasure._hash_normalized("\uff4aane@example.com", "email", salt)
    reviews = pl.DataFrame(
        {"review_id": ["r1", "r2"], "email": ["\uff4aane@example.com", "bob@example.com"]}
    )
    assert erasure.suppression_mask(reviews, "reviews", {logged_before}, salt).to_list() == [
        True,
        False,
    ]
    bob = erasure._hash_normalized("bob", "handle", salt)
    profiles = pl.DataFrame(
        {"customer_id": ["C2", "C3"], "social_handles": ["\uff41nn\uff1b\uff20bob", "@carl"]}
    )
    assert erasure.suppression_mask(profiles, "customers", {bob}, salt).to_list() == [True, False]
    ann = erasure._hash_normalized("ann@x.com", "email", salt)
    orders = pl.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "email": ["Ann <\uff41nn\uff20x.com>", None, None],
            "channel": ["web", "\uff41nn\uff20x.com", "web"],
        }
    )
    assert erasure.suppression_mask(orders, "orders", {ann}, salt).to_list() == [True, True, False]
    written = {
        "customer_id": ["c1", "c2"],
        "email": ["ann@x.com\u3000.", "ann@x.com ."],
        "social_handles": ["\uff41nn\uff1b\uff20bob", None],
    }
    customers = SOURCES["customers"]
    raw = pl.DataFrame(
        {c: written.get(c, [None, None]) for c in customers.columns},
        schema=dict.fromkeys(customers.columns, pl.String),
    )
    staged = normalise_text(raw, customers)
    assert staged["email"].to_list() == ["ann@x.com", "ann@x.com"]
    assert staged["social_handles"].to_list() == ["ann;@bob", None]


def test_a_row_read_with_too_few_fields_is_erased_and_suppressed_by_any_of_its_values(built):
    """A short CSV row (a field missing) is quarantined as wrong_field_count with its values
    under the wrong names: her email sat under customer_id, where erasure did not look, and a
    second erase said "nothing matched". Such rows are now matched by any value, both when the
    person is erased and when a later file holds one."""
    con, exports, _ = built
    header = "order_id,customer_id,email,ordered_at,net_amount,currency,status,channel\n"
    short = "o20,{email},2024-02-05 10:00:00,10.00,USD,completed,web\n"  # customer_id missing
    (exports / "orders" / "short.csv").write_text(
        header + short.format(email="Jane.Doe@example.com") + short.format(email="bob@example.com")
    )
    ingest_source(con, exports, "orders")
    quarantined = "SELECT count(*) FROM staging.quarantine WHERE source_file LIKE '%short.csv'"
    assert con.execute(quarantined).fetchone() == (2,)

    erasure.erase(con, email="jane.doe@example.com")
    assert con.execute(quarantined).fetchone() == (1,)  # Bob's short row stays
    (later := exports / "orders" / "short_later.csv").write_text(
        header + short.format(email=" JANE.DOE@example.com")
    )
    ingest_source(con, exports, "orders")
    assert later.exists()
    assert con.execute(
        "SELECT count(*) FROM staging.quarantine WHERE source_file LIKE '%short_later.csv'"
    ).fetchone() == (0,)
    for name in SOURCES:
        _, read, staged, quarantined_rows, erased = reconcile(con, name)
        assert read == staged + quarantined_rows + erased, name
    assert mentions(con, TOKENS) == {}


ORDER_HEADER = "order_id,customer_id,email,ordered_at,net_amount,currency,status,channel\n"


def test_quarantined_rows_holding_her_keys_in_the_wrong_columns_are_erased(built):
    """A privacy review: rows with her id and email swapped (quarantined for the date) and her
    email under `channel` stayed in staging.quarantine, and in the published file, after she
    was erased. A key is now looked for where the contract does not put it too."""
    con, exports, _ = built
    (exports / "orders" / "misplaced.csv").write_text(
        ORDER_HEADER
        + "o30,Jane.Doe@example.com,JANE-001,not-a-date,10.00,USD,completed,web\n"
        + "o31,,,2024-02-05 10:00:00,12.00,USD,completed, JANE.DOE@example.com\n"
        + "o32,BOB-002,bob@example.com,not-a-date,10.00,USD,completed,web\n"
    )
    ingest_source(con, exports, "orders")
    held = "SELECT source_row FROM staging.quarantine WHERE source_file LIKE '%misplaced.csv'"
    assert sorted(con.execute(held).fetchall()) == [(1,), (2,), (3,)]

    erasure.erase(con, email="jane.doe@example.com")
    assert con.execute(held).fetchall() == [(3,)]  # Bob's row stays
    assert mentions(con, TOKENS) == {}
    for name in SOURCES:
        _, read, staged, quarantined, erased = reconcile(con, name)
        assert read == staged + quarantined + erased, name


def test_her_address_inside_a_longer_value_is_erased_and_kept_out(built):
    """A reviewer's export wrote `Jane Doe <jane.doe@example.com>` (as mail tools write an
    address): the row was quarantined as a malformed email, and her erasure said "no row
    matched", leaving her name and address in both databases; a later file's such row went to
    the quarantine too. Each word with an '@' is now looked at as an email."""
    con, exports, _ = built
    (exports / "orders" / "named.csv").write_text(
        ORDER_HEADER
        + 'o50,,"Jane Doe <Jane.Doe@example.com>",2024-02-05 10:00:00,12.00,USD,completed,web\n'
        + 'o51,,"Bob <bob@example.com>",2024-02-05 10:00:00,12.00,USD,completed,web\n'
    )
    ingest_source(con, exports, "orders")
    held = "SELECT source_row FROM staging.quarantine WHERE source_file LIKE '%named.csv'"
    assert sorted(con.execute(held).fetchall()) == [(1,), (2,)]

    erasure.erase(con, email="jane.doe@example.com")
    assert con.execute(held).fetchall() == [(2,)]  # Bob's row stays
    (exports / "orders" / "named_later.csv").write_text(
        ORDER_HEADER
        + 'o52,,"J. Doe (jane.doe@example.com)",2024-02-06 10:00:00,9.00,USD,completed,web\n'
    )
    ingest_source(con, exports, "orders")
    later = "SELECT count(*) FROM staging.quarantine WHERE source_file LIKE '%named_later.csv'"
    assert con.execute(later).fetchone() == (0,)
    assert mentions(con, TOKENS) == {}
    for name in SOURCES:
        _, read, staged, quarantined, erased = reconcile(con, name)
        assert read == staged + quarantined + erased, name


def test_an_address_that_only_holds_hers_is_someone_elses():
    """Looking for her address inside longer values cut words at quotes and `|`: another
    person's `o'brien@x.com` was taken for `brien@x.com` and dropped at ingest. Words are cut
    only where an address cannot go on, then unwrapped of brackets and quotes."""
    salt = "s"
    erased = {erasure.subject_hash(v, "email", salt) for v in ("brien@x.com", "bob@x.com")}
    erased.add(erasure.subject_hash("jane@x.com", "email", salt))
    rows = pl.DataFrame(
        {
            "customer_id": ["1", "2", "3", "4", "5"],
            "email": ["o'brien@x.com", "a|bob@x.com", "{x}bob@x.com", "(jane@x.com)",
                      "Jane <jane@x.com>"],
        }
    )  # fmt: skip
    assert erasure.suppression_mask(rows, "customers", erased, salt).to_list() == [
        False, False, False, True, True,
    ]  # fmt: skip


def test_a_later_profile_with_her_handle_or_a_row_with_her_email_elsewhere_is_kept_out(built):
    """A privacy review: after her erasure a new profile with another id and email but one of
    her handles was staged, put in the marts and the audiences (identity would merge it with
    her); a bad one went to the quarantine with the handle. A later order with her email
    under `channel` was quarantined with it. The ingest now drops all three as hers."""
    con, exports, _ = built
    erasure.erase(con, email="jane.doe@example.com")
    write_csv(
        exports / "customers" / "late.csv",
        [
            {"customer_id": "NEW-7", "email": "new7@example.com", "social_handles": "@x7; @JaneD",
             "signup_date": "2024-02-01", "loyalty_member": "true", "marketing_consent": "true",
             "country": "US"},
            {"customer_id": "NEW-8", "email": "new8@example.com", "social_handles": "JD_Photos",
             "signup_date": "2024-02-01", "loyalty_member": "maybe", "marketing_consent": "true",
             "country": "US"},
            {"customer_id": "NEW-9", "email": "new9@example.com", "social_handles": "@x9",
             "signup_date": "2024-02-01", "loyalty_member": "true", "marketing_consent": "true",
             "country": "US"},
        ],
    )  # fmt: skip
    (exports / "orders" / "late.csv").write_text(
        ORDER_HEADER + "o40,,,2024-02-05 10:00:00,12.00,USD,completed,jane.doe@example.com\n"
    )
    for name in ("customers", "orders"):
        ingest_source(con, exports, name)

    staged = con.execute("SELECT customer_id FROM staging.customers WHERE customer_id LIKE 'NEW%'")
    assert staged.fetchall() == [("NEW-9",)]
    late = "SELECT count(*) FROM staging.quarantine WHERE source_file LIKE '%late.csv'"
    assert con.execute(late).fetchone() == (0,)
    assert mentions(con, TOKENS) == {}
    erased = dict(
        con.execute(
            "SELECT source, sum(rows) FROM staging.erased_rows "
            "WHERE source_file LIKE '%late.csv' GROUP BY source"
        ).fetchall()
    )
    assert erased == {"customers": 2, "orders": 1}


def test_a_quarantined_row_of_his_naming_anothers_email_does_not_erase_her(built):
    """A privacy review: a later export gave BOB-002 Carol's email and handle; the row was
    quarantined (a profile change not applied) and the identity merge kept them apart, but
    erasing Bob followed the quarantined row's keys and erased Carol for good: her profile,
    orders and social events, her keys logged. The row goes with Bob; its keys lead no
    further."""
    con, exports, _ = built
    write_csv(
        exports / "customers" / "later.csv",
        [
            {"customer_id": "BOB-002", "email": "-carol@example.com", "social_handles": "@carol",
             "signup_date": "2023-02-01", "loyalty_member": "true", "marketing_consent": "true",
             "country": "US"},
        ],
    )  # fmt: skip
    ingest_source(con, exports, "customers")
    bobs_row = "SELECT count(*) FROM staging.quarantine WHERE source_file LIKE '%later.csv'"
    assert con.execute(bobs_row).fetchone() == (1,)
    carols = (
        "SELECT (SELECT count(*) FROM staging.customers WHERE customer_id = 'CAROL-004'), "
        "(SELECT count(*) FROM staging.orders WHERE customer_id = 'CAROL-004'), "
        "(SELECT count(*) FROM staging.social WHERE actor_handle = 'carol' "
        "AND target_handle IS DISTINCT FROM 'bobby')"  # a reaction to Bob goes with him
    )
    assert con.execute(carols).fetchone() == (1, 1, 1)

    erasure.erase(con, customer_id="BOB-002")
    assert con.execute(carols).fetchone() == (1, 1, 1)
    assert con.execute(bobs_row).fetchone() == (0,)  # the row naming Bob went with him
    salt = erasure.resolve_salt(con)
    logged = erasure.erased_subject_hashes(con, salt)
    assert erasure.subject_hash("-carol@example.com", "email", salt) not in logged
    assert erasure.subject_hash("BOB-002", "customer_id", salt) in logged


def _quarantined_bob(exports: Path, email: str, handles: str = "") -> None:
    write_csv(
        exports / "customers" / "later.csv",
        [
            {"customer_id": "BOB-002", "email": email, "social_handles": handles,
             "signup_date": "2023-02-01", "loyalty_member": "true", "marketing_consent": "true",
             "country": "US"},
        ],
    )  # fmt: skip


def test_erasing_her_by_her_email_leaves_him_whose_quarantined_row_named_it(built):
    """The other side of the review's case: erasing Carol by her email matched Bob's
    quarantined row (a profile change giving him her email) and must not follow it to Bob."""
    con, exports, _ = built
    _quarantined_bob(exports, "-carol@example.com", "@bob_new")
    ingest_source(con, exports, "customers")
    bob = (
        "SELECT (SELECT count(*) FROM staging.customers WHERE customer_id = 'BOB-002'), "
        "(SELECT count(*) FROM staging.orders WHERE customer_id = 'BOB-002')"
    )
    assert con.execute(bob).fetchone() == (1, 1)
    erasure.erase(con, email="-carol@example.com")
    assert con.execute(bob).fetchone() == (1, 1)
    assert con.execute(
        "SELECT count(*) FROM staging.customers WHERE customer_id = 'CAROL-004'"
    ).fetchone() == (0,)


def test_erasing_by_the_email_of_his_quarantined_profile_change_erases_him(built):
    """A re-review of the fix above: a later export changed Bob's email (quarantined, a
    profile change not applied); erasing by the new email deleted that row alone and said
    `erased`, leaving Bob's profile and orders. The row is Bob's: the erasure follows its id."""
    con, exports, _ = built
    _quarantined_bob(exports, "bob.new@example.com")
    ingest_source(con, exports, "customers")
    report = erasure.erase(con, email="bob.new@example.com")
    assert report.rows_deleted["staging.customers"] == 1
    assert con.execute(
        "SELECT (SELECT count(*) FROM staging.customers WHERE customer_id = 'BOB-002'), "
        "(SELECT count(*) FROM staging.orders WHERE customer_id = 'BOB-002')"
    ).fetchone() == (0, 0)


def test_erasure_trims_what_the_ingest_trims(tmp_path):
    """One trimming rule: the characters the ingest removes from both ends of a value (Unicode
    whitespace, as polars' strip_chars, and the invisible ones) are the ones erasure removes
    from a request (Python, polars) and from raw quarantined text (SQL), no more; inside an
    email address the invisible ones are removed everywhere, by all of them."""
    from engagement_box.sql import load_sql
    from engagement_box.staging.contracts import INVISIBLE, SOURCES, TRIMMED, WHITESPACE
    from engagement_box.staging.validation import normalise_text

    codepoints = [*range(0x3100), 0xFEFF]  # the byte-order mark is beyond
    padded = [chr(c) + "a" + chr(c) for c in codepoints]
    by_polars = {
        c
        for c, v in zip(codepoints, pl.Series(padded).str.strip_chars().to_list(), strict=True)
        if v == "a"
    }
    assert by_polars == {ord(c) for c in WHITESPACE}
    invisible = {ord(c) for c in INVISIBLE}
    orders = SOURCES["orders"]
    raw = pl.DataFrame({c: [None] * len(padded) for c in orders.columns}, schema=orders.dtypes)
    raw = raw.cast(pl.String).with_columns(pl.Series("customer_id", padded))
    ingest = normalise_text(raw, orders)["customer_id"].to_list()
    by_ingest = {c for c, v in zip(codepoints, ingest, strict=True) if v == "a"}
    assert by_ingest == by_polars | invisible == {ord(c) for c in TRIMMED}

    def kept_a(values):
        return {c for c, v in zip(codepoints, values, strict=True) if v == "a"}

    assert kept_a([erasure.normalize(t, "customer_id") for t in padded]) == by_ingest
    frame = pl.DataFrame({"v": padded})
    assert kept_a(frame.select(erasure.normalized_expr("v", "customer_id"))["v"]) == by_ingest
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute(load_sql("erasure/create_trim_macro"))
        trimmed = con.execute(
            "SELECT list_transform($texts::VARCHAR[], t -> erasure_trimmed(t))", {"texts": padded}
        ).fetchone()[0]
        con.execute(load_sql("intermediate/create_schema"))
        con.execute(load_sql("intermediate/normalization"))
        con.execute(load_sql("erasure/create_normalize_macro"))
        hidden = ["\ufeffAnna\u200b.Lee@Shop\u2060.com\u200d", "anna.lee@shop.com\u200c "]
        emails_sql = con.execute(
            "SELECT list_transform($texts::VARCHAR[], t -> erasure_normalized(t, 'email'))",
            {"texts": hidden},
        ).fetchone()[0]
        (handle_sql,) = con.execute(
            "SELECT erasure_normalized($h, 'handle')", {"h": "\u200b@Anna\u2060_1 "}
        ).fetchone()
    finally:
        con.close()
    assert kept_a(trimmed) == by_ingest
    # Inside an email address: removed everywhere, by the ingest and by every erasure path.
    raw = raw.head(2).with_columns(pl.Series("email", hidden))
    staged = normalise_text(raw, orders)["email"].to_list()
    assert staged == ["Anna.Lee@Shop.com", "anna.lee@shop.com"]
    assert [erasure.normalize(t, "email") for t in hidden] == ["anna.lee@shop.com"] * 2
    assert (
        pl.DataFrame({"e": hidden}).select(erasure.normalized_expr("e", "email"))["e"].to_list()
        == ["anna.lee@shop.com"] * 2
    )
    assert emails_sql == ["anna.lee@shop.com"] * 2
    # Handles the same way: "\u200b@Anna\u2060_1 " is the handle anna_1 everywhere.
    handle = "\u200b@Anna\u2060_1 "
    assert erasure.normalize(handle, "handle") == "anna_1" == handle_sql
    assert pl.DataFrame({"h": [handle]}).select(erasure.normalized_expr("h", "handle"))[
        "h"
    ].to_list() == ["anna_1"]


def test_an_erasure_is_finished_once_its_files_are_and_a_lake_waits_for_its_own(
    built, tmp_path, monkeypatch
):
    """An erase stopped after its commit is unfinished until its files are rewritten. A later
    erase of someone else finishes it too, unless a Spark lake holds versions: the lake lost
    only the later person (a review found the first one still there, recorded finished)."""
    from engagement_box.spark import lake as spark_lake

    con, _, audience_dir = built
    published = tmp_path / "published" / "w.duckdb"
    published.parent.mkdir()
    layout = readers.Layout(published=published, working=tmp_path / "w.duckdb")
    readers.publish(con, layout)
    stopped = erasure.erase(con, email=JANE_EMAIL)  # committed; stopped before its files
    assert readers.unfinished_erasures(con) == [stopped.request_id]

    lake = tmp_path / "lake"
    monkeypatch.setattr(spark_lake, "has_lake", lambda path: True)
    monkeypatch.setattr(erasure, "erase_from_lake", lambda path, subjects, found=True: {})
    bob = erasure.erase(
        con, customer_id="BOB-002", audience_dir=audience_dir, published=layout, lake=lake
    )
    assert readers.unfinished_erasures(con) == [stopped.request_id]  # the lake: Jane's own erase

    monkeypatch.setattr(spark_lake, "has_lake", lambda path: False)
    erasure.erase(con, customer_id="CAROL-004", audience_dir=audience_dir, published=layout)
    assert readers.unfinished_erasures(con) == []
    assert bob.request_id not in readers.unfinished_erasures(con)


def test_erasure_reaches_the_published_file_and_every_history_file(built, tmp_path):
    """The file analysts open and the Parquet files of every version (an expired one kept for old
    sessions among them) no longer hold the person after an erasure."""
    con, _, audience_dir = built
    published = tmp_path / "published" / "w.duckdb"
    published.parent.mkdir()
    layout = readers.Layout(published=published, working=tmp_path / "w.duckdb")
    readers.publish(con, layout)
    versions.apply_retention(con, keep_versions=1, keep_days=10_000)
    readers.publish(con, layout)
    expired = layout.history_file("customer_scores", 1)
    assert expired.exists()  # kept a while for sessions opened before the retention
    reader = duckdb.connect(str(published), read_only=True)
    try:
        assert mentions(reader, TOKENS)
    finally:
        reader.close()

    report = erasure.erase(con, email=JANE_EMAIL, audience_dir=audience_dir, published=layout)

    assert report.published_file and report.history_files_rewritten
    reader = duckdb.connect(str(published), read_only=True)
    try:
        assert mentions(reader, TOKENS) == {}
        assert reader.execute("SELECT count(*) FROM marts.customer_scores").fetchone() == (2,)
        files = sorted(layout.history_dir.rglob("*.parquet"))
        assert files and not expired.exists()
        for path in files:
            text = reader.execute(
                "SELECT lower(CAST(list(p) AS VARCHAR)) FROM read_parquet($f) AS p",
                {"f": str(path)},
            ).fetchone()[0]
            assert not any(t in text for t in TOKENS), path
    finally:
        reader.close()
    assert not list(published.parent.glob("*.wal"))


def test_the_erase_command_reaches_the_published_file(built, tmp_path, monkeypatch, capsys):
    from engagement_box import cli

    con, _, audience_dir = built
    published = tmp_path / "published" / "w.duckdb"
    published.parent.mkdir()
    readers.publish(con, readers.Layout(published=published, working=tmp_path / "w.duckdb"))
    con.close()
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(published))
    monkeypatch.setenv("ENGAGEMENT_WORKING_DB", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("ENGAGEMENT_AUDIENCE_DIR", str(audience_dir))
    # No Spark lake here; never the repository's own data/lake.
    monkeypatch.setenv("ENGAGEMENT_LAKE_DIR", str(tmp_path / "lake"))

    assert cli.main(["erase", "--email", JANE_EMAIL]) == 0
    assert not (tmp_path / "lake").exists()  # an erase creates no lake where there is none

    out = capsys.readouterr().out
    assert "published file rebuilt without the person" in out
    # what the erasure leaves to the next run, said (the others' CIV ceded to the person)
    assert (
        "CIV no longer sums to 0 there); the next run (`engagement-box run`) publishes a version"
    ) in out
    reader = duckdb.connect(str(published), read_only=True)
    try:
        assert mentions(reader, TOKENS) == {}
    finally:
        reader.close()


PROFILE = {
    "social_handles": "", "signup_date": "2023-01-01", "loyalty_member": "true",
    "marketing_consent": "true", "country": "DE",
}  # fmt: skip


def _till_and_family(family: tuple[str, ...] = ()) -> list[dict]:
    """Six profiles t0-t5 on a till's noemail@ address (a placeholder at the default limit of
    5), and the given family members on one shared home address."""
    return [PROFILE | {"customer_id": f"t{i}", "email": "noemail@shop.com"} for i in range(6)] + [
        PROFILE | {"customer_id": m, "email": "home@example.com"} for m in family
    ]


def test_erasing_a_person_leaves_the_strangers_who_share_a_placeholder(tmp_path, monkeypatch):
    """Six profiles carry a till's noemail@ address (a placeholder: more than 5). Erasing one of
    them by id erases that profile and its orders only: not the five strangers, not the guest
    orders on the address, and the address is not logged, so a later export carrying it is
    staged. A family's shared address is still followed (erasing m2 erases m1 too)."""
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    exports = tmp_path / "exports"
    write_csv(exports / "customers" / "customers.csv", _till_and_family(("m1", "m2")))

    def order(oid: str, cid: str, email: str) -> dict:
        return {
            "order_id": oid, "customer_id": cid, "email": email,
            "ordered_at": "2024-01-02T10:00:00", "net_amount": "5.00", "currency": "USD",
            "status": "completed", "channel": "web",
        }  # fmt: skip

    write_csv(
        exports / "orders" / "orders.csv",
        [
            order("o1", "t3", "noemail@shop.com"),
            order("o2", "t4", "noemail@shop.com"),
            order("o3", "G1", "noemail@shop.com"),  # a guest at the till (an id of no profile)
            order("o4", "m1", "home@example.com"),
        ],
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    for name in ("customers", "orders"):
        ingest_source(con, exports, name)
    build_identity_links(con)

    report = erasure.erase(con, customer_id="t3")

    customers = con.execute("SELECT customer_id FROM staging.customers ORDER BY 1").fetchall()
    assert [c for (c,) in customers] == ["m1", "m2", "t0", "t1", "t2", "t4", "t5"]
    orders = con.execute("SELECT order_id FROM staging.orders ORDER BY 1").fetchall()
    assert [o for (o,) in orders] == ["o2", "o3", "o4"]
    assert report.placeholders_not_followed == 1
    assert report.subjects == {"customer_id": 1, "email": 0, "handle": 0}
    # The address was not logged: a new export carrying it is staged, not kept out.
    write_csv(exports / "orders" / "later.csv", [order("o5", "G2", "NoEmail@shop.com")])
    ingest_source(con, exports, "orders")
    assert con.execute("SELECT count(*) FROM staging.orders WHERE order_id = 'o5'").fetchone() == (
        1,
    )

    family = erasure.erase(con, customer_id="m2")  # an ordinary shared address is followed
    assert family.subjects == {"customer_id": 2, "email": 1, "handle": 0}
    assert con.execute("SELECT count(*) FROM staging.orders WHERE order_id = 'o4'").fetchone() == (
        0,
    )
    con.close()


def refusal(con, **request) -> str:
    """The message of the erasure `request`, which must be refused as a shared key."""
    with pytest.raises(erasure.SharedKey) as refused:
        erasure.erase(con, **request)
    return str(refused.value)


def test_an_erasure_by_a_shared_address_is_refused_unless_its_profiles_are_all_the_person(
    tmp_path, monkeypatch
):
    """A review asked to erase by a till's noemail@ address (on six profiles, a placeholder):
    it erased all six separate customers and every order carrying it, and logged the address,
    so every later customer and guest order with it was kept out for good. Such a request is
    refused now (nothing written), naming the profiles; with shared=True (every profile is
    the person's, e.g. one person's six accounts) they are all erased."""
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    exports = tmp_path / "exports"
    write_csv(exports / "customers" / "customers.csv", _till_and_family(("m1", "m2")))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ingest_source(con, exports, "customers")
    build_identity_links(con)

    said = refusal(con, email=" NoEmail@Shop.com ")
    assert said.startswith(
        "the email noemail@shop.com is on 6 customer profiles (more than 5, "
        "ENGAGEMENT_MAX_PROFILES_PER_KEY as the identity links were built with it): identity "
        "counts it as shared"
    ), said
    assert "(t0, t1, t2, t3, t4, t5)" in said and "--customer-id" in said and "--shared" in said
    assert con.execute("SELECT count(*) FROM staging.customers").fetchone() == (8,)
    assert con.execute("SELECT count(*) FROM staging.erasure_log").fetchone() == (0,)

    # one carrier erased by id: five stay, and identity still counts the erased one (a
    # re-review: the refusal said "on 5 profiles (more than ... 5)")
    erasure.erase(con, customer_id="t0")
    said = refusal(con, email="noemail@shop.com")
    assert said.startswith(
        "the email noemail@shop.com is on 5 customer profiles, and 1 erased before carries it "
        "still (identity counts 6, more than 5, ENGAGEMENT_MAX_PROFILES_PER_KEY as the "
        "identity links were built with it)"
    ), said
    assert "(t1, t2, t3, t4, t5)" in said
    assert con.execute("SELECT count(*) FROM staging.erasure_log").fetchone() == (1,)

    report = erasure.erase(con, email="noemail@shop.com", shared=True)
    customers = con.execute("SELECT customer_id FROM staging.customers ORDER BY 1").fetchall()
    assert [c for (c,) in customers] == ["m1", "m2"]
    assert report.subjects["customer_id"] == 5
    con.close()


@pytest.mark.parametrize("built_with", [3, 10])
def test_an_erasure_judges_a_key_shared_by_the_limit_identity_was_built_with(
    tmp_path, monkeypatch, built_with
):
    """The erasing shell's ENGAGEMENT_MAX_PROFILES_PER_KEY (5) was used, not the limit the
    warehouse's identity links were built with (a re-review): built with 3, an erasure by a
    family's address on 4 separate customers erased them all; built with 10, the till's 6
    profiles (one person there) were refused, and --customer-id then left five of them."""
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    monkeypatch.delenv("ENGAGEMENT_MAX_PROFILES_PER_KEY", raising=False)
    exports = tmp_path / "exports"
    write_csv(
        exports / "customers" / "customers.csv",
        _till_and_family(("m1", "m2", "m3", "m4")),
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ingest_source(con, exports, "customers")
    build_identity_links(con, max_profiles=built_with)
    assert erasure.built_profiles_limit(con) == built_with
    if built_with == 3:  # the family's 4 profiles are 4 customers in this warehouse
        with pytest.raises(erasure.SharedKey, match="more than 3, ENGAGEMENT_MAX_PROFILES_PER_"):
            erasure.erase(con, email="home@example.com")
        assert con.execute("SELECT count(*) FROM staging.customers").fetchone() == (10,)
        report = erasure.erase(con, customer_id="m1")  # the address left alone, said by 3
        assert report.placeholders_not_followed == 1
        assert report.profiles_limit == (
            "3, ENGAGEMENT_MAX_PROFILES_PER_KEY as the identity links were built with it"
        )
    else:  # the till's 6 profiles are one person in this warehouse
        report = erasure.erase(con, customer_id="t0")
        assert report.placeholders_not_followed == 0
        left = con.execute("SELECT customer_id FROM staging.customers ORDER BY 1").fetchall()
        assert [c for (c,) in left] == ["m1", "m2", "m3", "m4"]
    con.close()


def _people(con) -> dict[str, str]:
    rows = con.execute(
        "SELECT customer_id, resolved_customer_id FROM intermediate.customer_merge"
    ).fetchall()
    return dict(rows)


def _till_links(con) -> list[tuple]:
    return con.execute(
        "SELECT customer_id, source_rows FROM intermediate.identity_links "
        "WHERE source = 'customers' AND role = 'email' AND normalized_value = 'noemail@shop.com'"
    ).fetchall()


@pytest.mark.parametrize("salt", [None, "a salt held outside the warehouse"])
def test_erasing_carriers_of_a_placeholder_never_merges_the_strangers_left(
    tmp_path, monkeypatch, salt
):
    """Six profiles carry a till's noemail@ address (a placeholder: more than 5). Erasing one
    left five, under the limit, and the next identity build merged the five strangers into one
    person (one CLV, one audience row, the till's address as their contact). The erased carriers
    still count, by the salted hash the erasure log keeps (never the address itself); a second
    erasure counts both. An address under the limit with its erased carrier stays a family's."""
    if salt:
        monkeypatch.setenv(erasure.SALT_ENV, salt)
    else:
        monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    exports = tmp_path / "exports"
    write_csv(exports / "customers" / "customers.csv", _till_and_family(("m1", "m2", "m3")))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ingest_source(con, exports, "customers")
    build_identity_links(con)
    assert len(set(_people(con).values())) == 6 + 1  # six strangers, one family

    erasure.erase(con, customer_id="t3")
    build_identity_links(con)
    people = _people(con)
    assert sorted(people) == ["m1", "m2", "m3", "t0", "t1", "t2", "t4", "t5"]
    assert {people[t] for t in ("t0", "t1", "t2", "t4", "t5")} == {"t0", "t1", "t2", "t4", "t5"}
    assert _till_links(con) == [(None, 5)]  # resolves nothing, five profiles carry it now
    stored = con.execute("SELECT * FROM staging.erased_profile_keys").pl()
    assert "noemail@shop.com" not in str(stored.rows())

    erasure.erase(con, customer_id="t4")  # four left: both erased carriers count
    build_identity_links(con)
    people = _people(con)
    assert {people[t] for t in ("t0", "t1", "t2", "t5")} == {"t0", "t1", "t2", "t5"}

    erasure.erase(con, customer_id="m3")  # a family's address is followed and erased: the
    build_identity_links(con)  # others are erased with it (one person), as before
    assert not {"m1", "m2", "m3"} & set(_people(con))
    con.close()


def test_an_erased_profile_read_again_counts_on_its_keys_when_its_erasure_did_not(
    tmp_path, monkeypatch
):
    """A warehouse whose till carrier was erased before erased profiles' keys were kept: the
    next ingest that reads the erased profile again (a changed file, an upgrade's new rules)
    drops it, as always, and now keeps its keys by hash, so the five strangers stay apart."""
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    exports = tmp_path / "exports"
    rows = _till_and_family()
    write_csv(exports / "customers" / "customers.csv", rows)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ingest_source(con, exports, "customers")
    erasure.erase(con, customer_id="t3")
    con.execute("DELETE FROM staging.erased_profile_keys")  # as erased before they were kept
    build_identity_links(con)
    assert len({_people(con)[t] for t in ("t0", "t1", "t2", "t4", "t5")}) == 1  # the defect

    write_csv(  # the export again, with one more profile: taken in again, t3's row dropped
        exports / "customers" / "customers.csv",
        [*rows, PROFILE | {"customer_id": "n1", "email": "n1@example.com"}],
    )
    report = ingest_source(con, exports, "customers")
    assert report.rows_erased == 1
    build_identity_links(con)
    people = _people(con)
    assert {people[t] for t in ("t0", "t1", "t2", "t4", "t5")} == {"t0", "t1", "t2", "t4", "t5"}
    assert _till_links(con) == [(None, 5)]
    con.close()


def restored_beside(built_once: Path, register: Path, tmp_path: Path):
    """The module's warehouse as built before any erasure (a backup), restored in
    `tmp_path/backup` beside `register` (today's): its path and an open connection."""
    backup = tmp_path / "backup" / "w.duckdb"
    backup.parent.mkdir()
    shutil.copy(built_once / "w.duckdb", backup)
    shutil.copy(register, erasure.register_path(backup))
    return backup, duckdb.connect(str(backup))


def test_a_working_database_started_anew_beside_the_register_keeps_the_erased_out(
    built, built_once, tmp_path
):
    """A privacy review: a new working database (the README's way out of a damaged one) with
    the old one's register copied beside it staged three erased people again, into the marts
    and the audiences; the DuckDB ingest never read the register. A backup from before the
    erasures, beside the same register, is refused: its rows may hold them."""
    con, exports, _ = built
    erasure.erase(con, email="jane.doe@example.com")
    register = erasure.register_path(tmp_path / "w.duckdb")
    assert register.exists()

    anew = tmp_path / "anew" / "w.duckdb"
    anew.parent.mkdir()
    shutil.copy(register, erasure.register_path(anew))
    fresh = duckdb.connect(str(anew))
    try:
        adopted = [ingest_source(fresh, exports, name).erasures_adopted for name in SOURCES]
        assert adopted[0] > 0 and not any(adopted[1:])
        assert mentions(fresh, TOKENS) == {}
        assert fresh.execute("SELECT count(*) FROM staging.customers").fetchone()[0] > 0
        for name in SOURCES:
            _, read, staged, quarantined, erased = reconcile(fresh, name)
            assert read == staged + quarantined + erased, name
    finally:
        fresh.close()

    backup, old = restored_beside(built_once, register, tmp_path)  # before the erasure
    try:
        with pytest.raises(erasure.ErasureError, match="erase --from-register"):
            ingest_source(old, exports, "customers")
    finally:
        old.close()


def test_a_backup_restored_beside_todays_register_erases_its_people_again(
    built, built_once, tmp_path
):
    """A backup review: the working database restored from before an erasure, with today's
    register beside it, was refused with "move it aside and build anew" (every version lost),
    and an erase on it wrote the register from its older log, dropping the people erased after
    the backup. The register only grows; the refusal points to `erase --from-register`, whose
    requests (found in the staged rows, each from the column it matched) erase the person
    again, after which the ingest goes on."""
    con, exports, _ = built
    erasure.erase(con, email="jane.doe@example.com")
    register = erasure.register_path(tmp_path / "w.duckdb")
    erased = erasure.read_register(register)[0]

    # taken before the erasure, today's register kept beside it
    backup, old = restored_beside(built_once, register, tmp_path)
    try:
        assert mentions(old, TOKENS) != {}
        requests = erasure.register_requests(old)
        assert ("email", "jane.doe@example.com") in requests or any(
            kind == "customer_id" for kind, _ in requests
        )
        # another person's erasure on the restored database keeps Jane in the register
        erasure.erase(old, customer_id="C-NOBODY")
        assert erased <= erasure.read_register(erasure.register_path(backup))[0]
        for kind, key in erasure.register_requests(old):
            erasure.erase(old, **{kind: key})
        assert erasure.register_requests(old) == []
        assert mentions(old, TOKENS) == {}
        for name in SOURCES:
            ingest_source(old, exports, name)  # no refusal now
        assert mentions(old, TOKENS) == {}
        assert erased <= erasure.erased_subject_hashes(old)
    finally:
        old.close()


def test_a_register_hashed_with_a_given_salt_is_never_replaced_under_a_new_one(
    built, built_once, tmp_path, monkeypatch
):
    """A review: people erased with ENGAGEMENT_ERASURE_SALT set, a backup from before any
    erasure restored beside that register, and an erase without the variable: a new salt was
    made, the register written again with the new request alone, and the first person came
    back at the next run. The erase is refused instead, before anything is written."""
    con, _, _ = built
    monkeypatch.setenv(erasure.SALT_ENV, "from-the-vault")
    erasure.erase(con, email="jane.doe@example.com")
    register = erasure.register_path(tmp_path / "w.duckdb")
    before = register.read_text()
    assert json.loads(before)["salt"] is None  # a given salt is not kept there
    monkeypatch.delenv(erasure.SALT_ENV)

    # no erasure yet: no salt of its own
    backup, old = restored_beside(built_once, register, tmp_path)
    try:
        with pytest.raises(erasure.SaltMismatch, match="ENGAGEMENT_ERASURE_SALT to that salt"):
            erasure.erase(old, customer_id="BOB-002")
        assert erasure.register_path(backup).read_text() == before
        assert erasure.erased_subject_hashes(old) == set()
    finally:
        old.close()


def test_a_person_in_the_restored_versions_only_is_found_and_erased_again(
    built, built_once, tmp_path
):
    """A re-review: a person whose staged rows were withdrawn after a version held them, then
    erased, came back in the restored backup's versions: `--from-register` looked in the staged
    rows only. The retained versions' customer ids are looked through too."""
    con, _, _ = built
    erasure.erase(con, customer_id="BOB-002")
    register = erasure.register_path(tmp_path / "w.duckdb")
    backup, old = restored_beside(built_once, register, tmp_path)
    try:
        for table, column in (
            ("customers", "customer_id"),
            ("orders", "customer_id"),
            ("reviews", "customer_id"),
            ("referrals", "referrer_customer_id"),
        ):
            old.execute(f"DELETE FROM staging.{table} WHERE {column} = 'BOB-002'")  # test only
        assert old.execute(
            "SELECT count(*) FROM history.customer_scores WHERE customer_id = 'BOB-002'"
        ).fetchone()[0]
        assert ("customer_id", "BOB-002") in erasure.register_requests(old)
        for kind, key in erasure.register_requests(old):
            erasure.erase(old, **{kind: key}, shared=True)
        assert not old.execute(
            "SELECT count(*) FROM history.customer_scores WHERE customer_id = 'BOB-002'"
        ).fetchone()[0]
        erasure.adopt_register(old, none_staged=True)  # his other keys: in no row (the CLI's end)
        assert erasure.register_problem(old) is None
    finally:
        old.close()


def test_a_register_that_cannot_be_read_stops_runs_and_erasures_and_is_never_replaced(
    built, tmp_path
):
    """A re-review: a register cut short counted as none: the audience catch-up wrote people
    erased after a backup back into the files, and the next run wrote the register again from
    the older log, forgetting them for good."""
    con, exports, _ = built
    erasure.erase(con, email="jane.doe@example.com")
    register = erasure.register_path(tmp_path / "w.duckdb")
    register.write_bytes(register.read_bytes()[:50])
    cut = register.read_bytes()
    assert "cannot be read" in erasure.register_problem(con)
    with pytest.raises(erasure.ErasureError, match="cannot be read"):
        erasure.refresh_register(con)
    with pytest.raises(erasure.ErasureError, match="cannot be read"):
        erasure.erase(con, customer_id="BOB-002")
    with pytest.raises(erasure.ErasureError, match="cannot be read"):
        ingest_source(con, exports, "customers")
    assert register.read_bytes() == cut
    assert con.execute(
        "SELECT count(*) FROM staging.customers WHERE customer_id = 'BOB-002'"
    ).fetchone()[0]


def test_a_backup_whose_staged_rows_hold_none_of_the_registers_people_takes_them_in(
    built, built_once, tmp_path
):
    """Today's register beside a database whose staged rows hold none of the people it lists
    (erased by keys it never staged): nothing to erase again, the keys are logged (as `erase
    --from-register` does once it found none) and the ingest goes on, where it was refused
    with "build anew"."""
    con, exports, _ = built
    erasure.erase(con, email="nobody.here@example.com")
    register = erasure.register_path(tmp_path / "w.duckdb")
    backup, old = restored_beside(built_once, register, tmp_path)
    try:
        with pytest.raises(erasure.ErasureError, match="erase --from-register"):
            ingest_source(old, exports, "customers")
        assert erasure.register_requests(old) == []
        assert erasure.adopt_register(old, none_staged=True) == 1
        assert ingest_source(old, exports, "customers").erasures_adopted == 0
    finally:
        old.close()


def test_a_person_known_only_by_a_social_handle_can_be_erased_by_it(built):
    """A privacy review: `erase` took only a customer id or an email, so a person seen only in
    social events (no profile) could not be erased at all."""
    con, exports, _ = built
    write_csv(
        exports / "social" / "stranger.csv",
        [
            {"event_id": eid, "actor_handle": actor, "event_type": "like", "target_handle": target,
             "post_id": "", "platform": "instagram", "occurred_at": "2024-01-04"}
            for eid, actor, target in (("s1", "@Stranger_X", "@bobby"), ("s2", "bobby", "stranger_x"))
        ],
    )  # fmt: skip
    ingest_source(con, exports, "social")
    build_identity_links(con)
    report = erasure.erase(con, handle=" @STRANGER_X ")
    assert report.found
    assert mentions(con, ["stranger_x"]) == {}
    (exports / "social" / "stranger_again.csv").write_text(
        "event_id,actor_handle,event_type,target_handle,post_id,platform,occurred_at\n"
        "s3,stranger_x,like,@carol,,instagram,2024-02-04\n"
    )
    ingest_source(con, exports, "social")
    assert mentions(con, ["stranger_x"]) == {}
    with pytest.raises(ValueError, match="empty handle"):
        erasure.erase(con, handle=" @ ")


def write_orders(exports: Path, name: str, rows: list[tuple[str, str, str]]) -> None:
    """An orders export of completed web orders of 25.00 USD: (order_id, customer_id, email)."""
    write_csv(
        exports / "orders" / name,
        [
            {
                "order_id": oid,
                "customer_id": cid,
                "email": email,
                "ordered_at": "2024-01-05T10:00:00",
                "net_amount": "25.00",
                "currency": "USD",
                "status": "completed",
                "channel": "web",
            }
            for oid, cid, email in rows
        ],
    )


def test_a_guest_buyer_erased_by_email_leaves_no_customer_behind(built):
    """A guest (no profile) whose orders carry her email on some rows only: erased by email,
    only the rows with the email went; her buyer id stayed a customer in every mart and
    version, its orders still counted. Her id is followed now; an id whose orders also carry
    someone else's email (a shop's shared guest id) is left, and said so."""
    con, exports, audience_dir = built
    write_orders(
        exports,
        "guests.csv",
        [
            ("g1", "G-77", "guest.person@example.com"),
            ("g2", "G-77", ""),  # her order without an email
            ("g3", "GUEST", "guest.person@example.com"),
            ("g4", "GUEST", "someone.else@example.com"),
        ],
    )
    ingest_source(con, exports, "orders")
    build_identity_links(con)
    buyers = con.execute(
        "SELECT buyer_id, count(*) FROM intermediate.orders_resolution "
        "WHERE order_id IN ('g1', 'g2') GROUP BY ALL"
    ).fetchall()
    assert buyers == [("G-77", 2)]  # a customer of its own in every metric

    report = erasure.erase(con, email="guest.person@example.com", audience_dir=audience_dir)

    assert (report.guest_ids_followed, report.guest_ids_shared) == (1, 1)
    staged = con.execute("SELECT order_id FROM staging.orders ORDER BY 1").fetchall()
    assert ("g2",) not in staged and ("g1",) not in staged and ("g3",) not in staged
    assert ("g4",) in staged  # the other person's order under the shared id stays
    assert mentions(con, ["g-77", "guest.person@example.com"]) == {}
    erased = erasure.erased_subject_hashes(con)  # kept out when exports are read again
    salt = erasure.resolve_salt(con)
    assert erasure.subject_hash("G-77", "customer_id", salt) in erased
    assert erasure.subject_hash("GUEST", "customer_id", salt) not in erased


def test_a_gift_order_under_an_erased_guest_id_does_not_erase_its_recipient(built):
    """Erasing guest id G-1 whose orders carry her email and, on a gift order, a friend's: the
    friend's email was erased, and the friend's own guest id with it (a re-review). An id
    named by the request brings the email its orders carry only when they carry one."""
    con, exports, audience_dir = built
    write_orders(
        exports,
        "gifts.csv",
        [
            ("k1", "G-1", "anna@example.com"),
            ("k2", "G-1", "friend@example.com"),  # a gift
            ("k3", "F-1", "friend@example.com"),  # the friend's own guest orders
            ("k4", "F-1", ""),
            ("k5", "G-2", "solo@example.com"),
        ],
    )
    ingest_source(con, exports, "orders")
    build_identity_links(con)

    report = erasure.erase(con, customer_id="G-1", audience_dir=audience_dir)
    assert report.guest_ids_followed == 0
    staged = {r[0] for r in con.execute("SELECT order_id FROM staging.orders").fetchall()}
    assert {"k1", "k2"}.isdisjoint(staged) and {"k3", "k4", "k5"} <= staged
    salt = erasure.resolve_salt(con)
    assert erasure.subject_hash("friend@example.com", "email", salt) not in (
        erasure.erased_subject_hashes(con)
    )
    # One email under the id: it is hers, and erased with it.
    report = erasure.erase(con, customer_id="G-2", audience_dir=audience_dir)
    assert erasure.subject_hash("solo@example.com", "email", salt) in (
        erasure.erased_subject_hashes(con)
    )


def test_an_address_with_a_dotted_capital_i_is_erased_as_identity_merged_it(built):
    """`erase --email İrem@example.tr`, the address on file, found no one: erasure lower-cased
    `İ` to two characters (Python's full lower case), identity to `i` (DuckDB's); a re-read
    then kept one of the person's two profiles out and staged the other (a review)."""
    con, exports, audience_dir = built
    write_csv(
        exports / "customers" / "customers_tr.csv",
        [
            {
                "customer_id": cid,
                "email": email,
                "social_handles": "",
                "signup_date": "2023-09-04",
                "loyalty_member": "false",
                "marketing_consent": "true",
                "country": "TR",
            }
            for cid, email in [("T1", "İrem@example.tr"), ("T2", "irem@example.tr")]
        ],
    )
    ingest_source(con, exports, "customers")
    build_identity_links(con)
    assert con.execute(
        "SELECT count(DISTINCT resolved_customer_id) FROM intermediate.customer_merge "
        "WHERE customer_id IN ('T1', 'T2')"
    ).fetchone() == (1,)

    report = erasure.erase(con, email="İrem@example.tr", audience_dir=audience_dir)
    assert report.found
    left = con.execute("SELECT count(*) FROM staging.customers WHERE customer_id LIKE 'T%'")
    assert left.fetchone() == (0,)
    # An erasure logged before hashed the full lower case: such a row is still kept out.
    salt = erasure.resolve_salt(con)
    legacy = {erasure._hash_normalized("i̇rem@example.tr", "email", salt)}
    rows = pl.DataFrame({"customer_id": ["T1", "T2"], "email": ["İrem@example.tr", "x@y.z"]})
    assert erasure.suppression_mask(rows, "customers", legacy, salt).to_list() == [True, False]


def test_a_spark_lakes_quarantine_holding_the_person_is_found(tmp_path: Path):
    """A person whose every row the Spark lake quarantined (raw rows, emails included): the
    lookup read the lake's staged tables alone, found no one, and kept the working tables, the
    quarantine among them (a review). Matched as the warehouse's quarantine is: by field, in a
    misplaced field, never by a longer id."""
    folder = tmp_path / "lake" / "tables" / "staging.quarantine" / "w1"
    folder.mkdir(parents=True)
    (folder.parent / "_current").write_text("w1")

    def row(source: str, raw: dict) -> dict:
        return {
            "source": source,
            "source_file": f"{source}/a.csv",
            "source_row": 1,
            "column": "ordered_at",
            "reason": "unparseable_timestamp",
            "detail": "",
            "reasons": ["ordered_at:unparseable_timestamp"],
            "raw_values": json.dumps(raw),
            "run_id": "r",
            "quarantined_at": dt.datetime(2026, 1, 1),
        }

    pl.DataFrame(
        [
            row("orders", {"order_id": "o1", "customer_id": "C10", "email": " Jane@X.com "}),
            row("reviews", {"review_id": "r1", "customer_id": "C20", "body": "ann@y.org"}),
        ]
    ).write_parquet(folder / "part-0.parquet")
    lake = tmp_path / "lake"
    holds = erasure.lake_quarantine_holds
    assert holds(lake, erasure._Subjects(email={"jane@x.com"}))
    assert holds(lake, erasure._Subjects(customer_id={"C10"}))
    assert holds(lake, erasure._Subjects(email={"ann@y.org"}))  # in a field not its own
    assert not holds(lake, erasure._Subjects(customer_id={"C1"}))
    assert not holds(lake, erasure._Subjects(email={"someone@else.com"}))
    assert not holds(tmp_path / "no_lake", erasure._Subjects(email={"jane@x.com"}))
    # A quarantine that cannot be read as the erasure reads it (a hand-made file without
    # `reason`): not a DuckDB error that stops the erasure, but "unknown" (None), on which
    # the erasure deletes the lake's working tables anyway.
    pl.DataFrame({"source": ["orders"], "raw_values": ["{}"]}).write_parquet(
        folder / "part-1.parquet"
    )
    assert holds(lake, erasure._Subjects(email={"someone@else.com"})) is None


def test_a_decomposed_key_is_the_composed_one_to_every_normalisation_and_the_audiences(tmp_path):
    """Rules 12 stage ids, emails and handles composed (NFC), after the invisible characters go
    (an `e`, a zero-width space or soft hyphen, then an accent, is `é`). Erasure composed first,
    so such a text stayed decomposed in its Python and SQL forms, and its audience files
    compared without composing: an audience row written `jose` + accent was kept by the
    request `josé` and its hash (a review)."""
    from engagement_box.sql import load_sql
    from engagement_box.staging.contracts import SOURCES
    from engagement_box.staging.validation import normalise_text

    written = [
        "jose\u200b\u0301@Example.com ",
        "jose\u00ad\u0301@example.com",
        "jos\u00e9@example.com",
    ]
    composed = "jos\u00e9@example.com"
    assert {erasure.normalize(t, "email") for t in written} == {composed}
    frame = pl.DataFrame({"v": written})
    assert set(frame.select(erasure.normalized_expr("v", "email"))["v"]) == {composed}
    orders = SOURCES["orders"]
    raw = pl.DataFrame({c: [None] * 3 for c in orders.columns}, schema=orders.dtypes)
    raw = raw.cast(pl.String).with_columns(pl.Series("email", written))
    assert {t.lower() for t in normalise_text(raw, orders)["email"]} == {composed}
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        for name in ("intermediate/create_schema", "intermediate/normalization"):
            con.execute(load_sql(name))
        in_sql = sql_normalized(con, written, "email")
    finally:
        con.close()
    assert set(in_sql) == {composed}

    folder = tmp_path / "audiences" / "quadrant"
    folder.mkdir(parents=True)
    pl.DataFrame({"customer_id": ["C9", "C8"], "email": [written[0], "ann@example.com"]}).write_csv(
        folder / "cev_champions.csv"
    )
    salt = "pepper"
    hashes = {erasure.subject_hash(composed, "email", salt)}
    removed = erasure.erase_from_audiences(tmp_path / "audiences", [], [composed], hashes, salt)
    assert removed == {"quadrant/cev_champions.csv": 1}
    assert pl.read_csv(folder / "cev_champions.csv")["customer_id"].to_list() == ["C8"]


def write_erased_by_id_exports(exports: Path) -> None:
    """Exports of X-1, whose erasure by id was logged before their profile was staged: their
    profile (x@example.com, @XH), a second profile with their email read first (X-2), a guest
    order and a review by the email, social events by the handle; Bob; a till's six profiles
    on a placeholder address (t3 erased by id too) and a guest order on it."""
    write_csv(
        exports / "customers" / "customers.csv",
        [
            PROFILE | {"customer_id": "X-2", "email": "X@Example.com "},  # theirs, read first
            PROFILE | {"customer_id": "X-1", "email": "x@example.com", "social_handles": "@XH"},
            PROFILE | {"customer_id": "BOB", "email": "bob@example.com", "social_handles": "bob"},
            *_till_and_family(),
        ],
    )
    write_orders(
        exports,
        "orders.csv",
        [("o1", "G-7", "X@example.com"), ("o2", "BOB", ""), ("o3", "G-8", "noemail@shop.com")],
    )
    (exports / "reviews").mkdir()
    (exports / "reviews" / "reviews.csv").write_text(
        "review_id,customer_id,email,product_id,rating,helpful_votes,verified_purchase,"
        "created_at\nr1,,x@example.com,p1,5,0,true,2024-01-03\nr2,BOB,,p1,4,0,true,2024-01-03\n"
    )
    (exports / "social").mkdir()
    (exports / "social" / "social.csv").write_text(
        "event_id,actor_handle,event_type,target_handle,post_id,platform,occurred_at\n"
        "e1,xh,like,bob,,instagram,2024-01-04\ne2,bob,comment,@xh,,instagram,2024-01-04\n"
        "e3,bob,tweet,,,twitter,2024-01-04\n"
    )


def test_a_profile_erased_by_id_before_it_was_staged_takes_its_email_and_handles_with_it(
    tmp_path, monkeypatch
):
    """A privacy review: an erasure by customer id arrived before the person's profile was ever
    staged, so only the id was logged. A later export brought the profile, with an email and a
    handle: the ingest dropped the profile by its id but staged the guest order and the review
    carrying the email, the social events by the handle and a second profile of theirs with the
    email. The profile's keys are erased with it now, in every source (customers staged first,
    as a run stages them), counted as erased; the till's placeholder address another erased
    profile carried is not, so the strangers on it and their orders stay."""
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    erasure.erase(con, customer_id="X-1")  # nobody staged yet: the id alone is logged
    erasure.erase(con, customer_id="t3")
    exports = tmp_path / "exports"
    write_erased_by_id_exports(exports)
    for name in ("customers", *(s for s in SOURCES if s != "customers")):
        ingest_source(con, exports, name)

    def keys(table: str, key: str) -> list[str]:
        return [
            k for (k,) in con.execute(f"SELECT {key} FROM staging.{table} ORDER BY 1").fetchall()
        ]

    assert keys("customers", "customer_id") == ["BOB", "t0", "t1", "t2", "t4", "t5"]
    assert keys("orders", "order_id") == ["o2", "o3"]  # the till's guest order stays
    assert keys("reviews", "review_id") == ["r2"]
    assert keys("social", "event_id") == ["e3"]
    erased = dict(
        con.execute("SELECT source, sum(rows) FROM staging.erased_rows GROUP BY 1").fetchall()
    )
    assert erased == {"customers": 3, "orders": 1, "reviews": 1, "social": 2}
    assert all(reconcile(con, name).holds for name in SOURCES)
    assert mentions(con, ["x@example.com", "xh"]) == {}
    con.close()


def test_the_staged_carriers_of_an_erased_profiles_keys_are_counted_once_per_profiles_state(
    tmp_path, monkeypatch
):
    """While an erased profile's key is not logged (a placeholder, left by the erasure), every
    source's staging asked how many staged profiles carry it: 4.2-5.0 s over 1M profiles each
    time (a code review). The count is kept for the next staging while the staged profiles are
    the same, and counted again when they change: here the placeholder's other carriers leave
    the customers file, and the key is then the erased person's own and is kept out."""
    monkeypatch.setenv("ENGAGEMENT_MAX_PROFILES_PER_KEY", "3")
    exports = tmp_path / "exports"

    def profiles(ids: list[str]) -> None:
        write_csv(
            exports / "customers" / "customers.csv",
            [
                {
                    "customer_id": cid,
                    "email": "till@shop.example",
                    "social_handles": "",
                    "signup_date": "2024-01-01",
                    "loyalty_member": "true",
                    "marketing_consent": "true",
                    "country": "US",
                }
                for cid in ids
            ],
        )

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        profiles(["p1", "p2", "p3", "p4"])
        ingest_source(con, exports, "customers")
        erasure.erase(con, customer_id="p1")
        till = erasure.subject_hash("till@shop.example", "email", erasure.resolve_salt(con))
        logged = erasure.erased_subject_hashes(con)
        assert till not in logged  # a placeholder: left by the erasure

        counted = []
        real = erasure.load_sql

        def load_sql(name: str, **kwargs):
            if name == "erasure/profile_key_carriers":
                counted.append(name)
            return real(name, **kwargs)

        monkeypatch.setattr(erasure, "load_sql", load_sql)
        salt = erasure.resolve_salt(con)
        for _ in range(3):  # three sources' stagings of one run
            assert erasure.erased_profiles_keys(con, logged, salt, memo=True) == set()
        assert len(counted) == 1

        profiles(["p1", "p2"])  # the till's other profiles are gone: its address is p1's own
        ingest_source(con, exports, "customers")
        assert erasure.erased_profiles_keys(con, logged, salt, memo=True) == {till}
        assert erasure.erased_profiles_keys(con, logged, salt) == {till}  # as counted anew
    finally:
        con.close()


def test_an_erased_person_leaving_the_audience_files_is_no_change_of_consent(
    december_run, tmp_path
):
    """The audience files record the consent they follow, and a quiet or failed run writes
    them again when it changed. An erasure took a consenting person out of the files and left
    the record as it was: the next run said the consent changed and wrote every file again
    (a review). The record follows the erasure now; one already behind stays behind."""
    from assets.publish import consent_behind
    from engagement_box.activation import audiences as activation
    from tests.pipeline_runs import copy_run

    copy = copy_run(december_run, tmp_path / "run")
    folder = copy.database.parent / "audiences"
    person = pl.read_csv(next(folder.rglob("*.csv")), infer_schema=False)["customer_id"][0]
    before = activation.recorded_consent(folder)
    working = readers.default_working(copy.database)
    record = folder / activation.WRITTEN_FROM  # the copy's files, as its own run records them
    written = json.loads(record.read_text())
    record.write_text(json.dumps({**written, "for": activation.owner_token(working)}))
    con = duckdb.connect(str(working))
    try:
        assert consent_behind(con, folder) is None
        report = erasure.erase(con, customer_id=person, audience_dir=folder)
        assert report.audience_rows_removed
        assert consent_behind(con, folder) is None
        after = activation.recorded_consent(folder)
        assert after["consenting"] == before["consenting"] - 1
    finally:
        con.close()

    # a record already behind the consent of now is left for the next run to write again
    assert not activation.follow_consent(folder, before, after)
    assert activation.recorded_consent(folder) == after
    assert activation.follow_consent(folder, after, before)
    assert activation.recorded_consent(folder) == before


def test_every_source_but_the_rates_holds_a_column_erasure_finds_people_by():
    """Erasure finds a person's rows by the columns of `IDENTIFYING_COLUMNS` alone: a source
    joined to people only through another key (a returns export's `order_id`) kept an erased
    person's rows, and every erasure test passed (a new owner's review). A source without such
    a column must say how its rows reach a person before it ships."""
    from engagement_box.governance.erasure import SUBJECT_COLUMNS

    without = {name for name, columns in SUBJECT_COLUMNS.items() if not columns}
    assert without == {"fx_rates"}, (
        f"{sorted(without - {'fx_rates'})}: no column erasure finds a person by; add one to "
        "governance/erasure.py's IDENTIFYING_COLUMNS, or teach erase() to follow its key"
    )


# Each column the pipeline keeps a person's key in, with one of Jane's keys of its kind: a table
# per column, so each row is found through that column alone (the fixture's Jane is a referee
# by email only and in no influence edge, so dropping `referee_customer_id` or
# `actor_customer_id` from IDENTIFYING_COLUMNS passed every test: a mutation review).
KEY_COLUMNS = {
    "customer_id": "JANE-001",
    "referrer_customer_id": "JANE-003",
    "referee_customer_id": "JANE-001",
    "actor_customer_id": "JANE-001",
    "target_customer_id": "JANE-003",
    "resolved_customer_id": "JANE-005",
    "email": JANE_EMAIL,
    "referee_email": JANE_EMAIL,
    "actor_handle": "janed",
    "target_handle": "jd_photos",
}


def test_a_row_holding_the_person_in_any_key_column_is_erased(built):
    con, _, _ = built
    for column, key in KEY_COLUMNS.items():
        con.execute(
            f"CREATE TABLE work.by_{column} AS SELECT * FROM (VALUES ($key, 1), ($other, 2)) "
            f't("{column}", n)',
            {"key": key, "other": "BOB-002"},
        )  # names from the test's own constants

    erasure.erase(con, email=JANE_EMAIL)

    left = {
        column: con.execute(f"SELECT n FROM work.by_{column}").fetchall() for column in KEY_COLUMNS
    }
    assert left == {column: [(2,)] for column in KEY_COLUMNS}, left


def test_every_column_the_pipeline_keeps_a_person_key_in_is_one_erasure_reads(december_run):
    """A real run's tables, in the working database and the published file: a column named as a
    customer id, an email or a handle that erasure does not read would keep the person. The
    profiles' `social_handles` list is the one exception: it goes with its profile's row, and
    erasure follows its handles from there (`_keys_to_follow`)."""
    from engagement_box.governance.readers import default_working

    found: dict[str, set[str]] = {}
    for database in (default_working(december_run.database), december_run.database):
        reader = duckdb.connect(str(database), read_only=True)
        try:
            for schema, table, column in reader.execute(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                "WHERE regexp_matches(column_name, '(customer_id|email|handles?)$')"
            ).fetchall():
                found.setdefault(column, set()).add(f"{schema}.{table}")
        finally:
            reader.close()
    unread = {c: sorted(t) for c, t in found.items() if c not in erasure.IDENTIFYING_COLUMNS}
    assert set(unread) == {"social_handles"}, unread
    assert unread["social_handles"] == ["staging.customers"]
    assert set(found) - {"social_handles"} == set(KEY_COLUMNS)


def test_a_new_database_beside_a_register_of_a_salt_not_given_refuses_a_salt_of_its_own(
    tmp_path, monkeypatch
):
    """`resolve_salt` itself (the callers ask `check_salt` first; a mutation review found
    nothing pinned this guard): a register whose hashes were made with a salt given then by
    ENGAGEMENT_ERASURE_SALT, which is not set now, is never answered with a new salt, which
    would write a register without them and let those people back. Nothing is stored."""
    monkeypatch.delenv(erasure.SALT_ENV, raising=False)
    working = tmp_path / "w.duckdb"
    erasure.register_path(working).write_text(
        json.dumps({"salt_fingerprint": "f", "salt": None, "subject_hashes": ["0" * 64]}),
        encoding="utf-8",
    )
    con = duckdb.connect(str(working))
    try:
        with pytest.raises(erasure.SaltMismatch, match="set ENGAGEMENT_ERASURE_SALT"):
            erasure.resolve_salt(con)
        assert not con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'erasure_salt'"
        ).fetchone()[0]
    finally:
        con.close()
