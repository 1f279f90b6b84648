"""The raw-export generator: deterministic, contract-shaped, honest about bad rows, realistic."""

import filecmp
import json
from datetime import datetime
from pathlib import Path

import duckdb
import pandera.polars as pa
import polars as pl
import pytest

from engagement_box.generator import (
    BAD_ROWS_NAME,
    EXPECTED_REASON,
    MANIFEST_NAME,
    RETAILER_SOURCES,
    GeneratorConfig,
    generate,
    load_manifest,
    main,
)
from engagement_box.staging.contracts import SOURCES
from engagement_box.staging.ingestion import ingest_source

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
# The command documented at the top of engagement_box/generator.py.
SAMPLE_ARGS = ["--customers", "2500", "--seed", "20260630"]
BOOLEANS = {"true": True, "false": False}
TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%:z", "%Y-%m-%d")


def files_of(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def read_source(root: Path, source: str) -> pl.DataFrame:
    """All files of a source as text, in file-name order, with `file` and 1-based `row`."""
    frames = []
    for path in sorted((root / source).iterdir()):
        if path.suffix == ".parquet":
            df = pl.read_parquet(path)
        else:
            df = pl.read_csv(path, infer_schema=False)
        assert df.columns == SOURCES[source].columns, path
        assert all(dtype == pl.String for dtype in df.dtypes), path
        frames.append(
            df.with_columns(
                pl.lit(f"{source}/{path.name}").alias("file"),
                pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("row"),
            )
        )
    return pl.concat(frames)


def ledger(root: Path) -> pl.DataFrame:
    return pl.read_csv(root / BAD_ROWS_NAME, infer_schema=False).with_columns(
        pl.col("row").cast(pl.Int64)
    )


def typed(df: pl.DataFrame, source: str) -> pl.DataFrame:
    """A minimal parse of the raw text into the contract's types (null where unparseable)."""
    spec = SOURCES[source]
    exprs = []
    for column, dtype in spec.dtypes.items():
        text = pl.col(column).str.strip_chars()
        text = pl.when(text == "").then(None).otherwise(text)
        if column in spec.casefold:
            text = text.str.to_lowercase()
        if dtype == pl.Datetime:
            text = pl.coalesce(
                text.str.to_datetime(fmt, strict=False).dt.replace_time_zone(None)
                for fmt in TIMESTAMP_FORMATS
            )
        elif dtype == pl.Date:
            text = text.str.to_date("%Y-%m-%d", strict=False)
        elif dtype in (pl.Float64, pl.Int64):
            text = text.cast(dtype, strict=False)
        elif dtype == pl.Boolean:
            text = text.replace_strict(BOOLEANS, default=None, return_dtype=pl.Boolean)
        exprs.append(text.alias(column))
    return df.select(exprs)


def unparsed(raw: pl.DataFrame, parsed: pl.DataFrame) -> pl.Series:
    """Rows where some non-empty text did not parse."""
    failed = pl.Series([False] * raw.height)
    for column in parsed.columns:
        present = raw[column].str.strip_chars().fill_null("") != ""
        failed = failed | (present & parsed[column].is_null())
    return failed


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small")
    generate(out, GeneratorConfig(customers=1_500, seed=11))
    return out


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 5), (b, 5), (c, 6)):
        generate(out, GeneratorConfig(customers=300, seed=seed))
    assert files_of(a) == files_of(b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(p) for p in files_of(a)], shallow=False)
    assert mismatch == [] and errors == []
    csv_files = [p for p in files_of(a) if p.suffix == ".csv" and (c / p).exists()]
    assert any((a / p).read_bytes() != (c / p).read_bytes() for p in csv_files)


def test_a_folder_holding_somebody_elses_exports_is_refused_not_emptied(tmp_path, capsys):
    """`engagement-box generate --out X` deleted X's real exports without a word. It replaces
    only what an earlier run of its own wrote (its manifest lists it), and refuses otherwise."""
    from engagement_box import cli

    out = tmp_path / "exports"
    generate(out, GeneratorConfig(customers=50, seed=1))
    generate(out, GeneratorConfig(customers=60, seed=2))  # its own files: replaced
    precious = out / "orders" / "my_real_export_2019.csv"
    precious.write_text("order_id\nA1\n")
    before = files_of(out)
    assert cli.main(["generate", "--out", str(out), "--customers", "50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"engagement-box generate: error: {out} holds export files the generator did not write "
        "(orders/my_real_export_2019.csv)"
    )
    assert precious.read_text() == "order_id\nA1\n" and files_of(out) == before


def test_every_file_is_readable_with_the_contract_columns_and_both_formats_are_used(small):
    suffixes = {p.suffix for p in files_of(small)}
    assert {".csv", ".parquet"} <= suffixes
    assert (small / "customers" / "customers.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    orders = sorted(p.name for p in (small / "orders").iterdir())
    assert orders[0] == "orders_2023-07.csv" and orders[-1] == "orders_2026-06.parquet"
    assert len(orders) == 36  # one file per calendar month
    for source in SOURCES:
        assert read_source(small, source).height > 0


def test_manifest_counts_match_the_files_and_the_bad_row_ledger(small):
    manifest = load_manifest(small)
    assert manifest == json.loads((small / MANIFEST_NAME).read_text())
    bad = ledger(small)
    assert set(bad["reason"]) <= set(EXPECTED_REASON.values())
    for source in RETAILER_SOURCES:
        info = manifest["sources"][source]
        rows = read_source(small, source)
        per_file = dict(rows.group_by("file").len().iter_rows())
        assert {f"{source}/{name}": n for name, n in info["files"].items()} == per_file
        assert info["rows"] == rows.height == manifest["rows"][source]
        mine = bad.filter(pl.col("source") == source)
        assert dict(mine.group_by("kind").len().iter_rows()) == info["bad_rows"]
        assert info["clean_rows"] == rows.height - mine.height
        assert mine.select("file", "row").is_unique().all()
        # The ledger's key is the key written at that file and row.
        key = SOURCES[source].key
        joined = mine.join(rows.select("file", "row", key), on=["file", "row"], how="left")
        assert joined.height == mine.height
        assert (joined["key"].eq_missing(joined[key])).all()
        # Every kind is exercised at this size.
        assert len(info["bad_rows"]) >= 9 and min(info["bad_rows"].values()) >= 1


def test_clean_rows_pass_the_contract_and_every_bad_row_breaks_it(small):
    bad = ledger(small)
    for source in RETAILER_SOURCES:
        spec = SOURCES[source]
        rows = read_source(small, source).join(
            bad.filter(pl.col("source") == source).select("file", "row", "kind"),
            on=["file", "row"],
            how="left",
        )
        clean = rows.filter(pl.col("kind").is_null())
        parsed = typed(clean, source)
        assert not unparsed(clean, parsed).any(), source
        spec.schema.validate(parsed, lazy=True)
        assert clean[spec.key].is_unique().all(), source

        defects = rows.filter(~pl.col("kind").fill_null("").str.starts_with("duplicate"))
        defects = defects.filter(pl.col("kind").is_not_null())
        parsed_bad = typed(defects, source)
        caught = set(unparsed(defects, parsed_bad).arg_true().to_list())
        try:
            spec.schema.validate(parsed_bad, lazy=True)
        except pa.errors.SchemaErrors as err:
            caught |= set(err.failure_cases["index"].drop_nulls().cast(pl.Int64).to_list())
        assert caught == set(range(defects.height)), source

        # A duplicate repeats a key that was written earlier (file order, then row order).
        ordered = rows.with_row_index("position")
        first = ordered.group_by(spec.key).agg(pl.col("position").min().alias("first"))
        dups = ordered.filter(pl.col("kind").str.starts_with("duplicate")).join(first, on=spec.key)
        assert dups.height and (dups["first"] < dups["position"]).all()


def test_the_ingest_quarantines_exactly_the_ledgers_rows_for_the_ledgers_reasons(small, tmp_path):
    """The ledger is the sample's answer key: what the real ingest does with each bad row. The
    generator wrote `n/a` as a malformed email, which the contract reads as no value
    (`NULL_TEXTS`): orders with it were staged, and profiles and referees were quarantined
    for another reason than the ledger's."""
    bad = ledger(small)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    for source in RETAILER_SOURCES:
        ingest_source(con, small, source, now=datetime(2026, 12, 1))
    quarantined = con.execute(
        "SELECT source, source_file AS file, source_row AS row, reason FROM staging.quarantine"
    ).pl()
    expected = bad.select("source", "file", "row", "reason")
    assert quarantined.height == expected.height
    assert quarantined.sort(pl.all()).equals(expected.sort(pl.all()))


def test_fx_rates_cover_every_foreign_order_and_pass_their_contract(small):
    rates = typed(read_source(small, "fx_rates"), "fx_rates")
    SOURCES["fx_rates"].schema.validate(rates, lazy=True)
    assert rates.select("date", "currency").is_unique().all()
    orders = read_source(small, "orders").with_columns(
        pl.col("currency").str.to_uppercase(),
        pl.col("ordered_at").str.slice(0, 10).str.to_date(strict=False).alias("day"),
    )
    foreign = orders.filter(
        pl.col("currency").is_in(["GBP", "EUR"]) & (pl.col("day") >= pl.date(2000, 1, 1))
    )
    first = rates.group_by("currency").agg(pl.col("date").min())
    assert set(first["currency"]) == {"GBP", "EUR"}
    joined = foreign.join(first, on="currency")
    assert foreign.height and (joined["day"] >= joined["date"]).all()


def test_the_data_behaves_like_retail(small):
    customers = read_source(small, "customers")
    orders = read_source(small, "orders")
    completed = (
        orders.filter(pl.col("status").str.to_lowercase() == "completed")
        .with_columns(pl.col("net_amount").cast(pl.Float64, strict=False))
        .filter(pl.col("net_amount").is_finite() & (pl.col("net_amount") >= 0))
    )
    per_customer = completed.group_by("customer_id").agg(
        pl.len().alias("n"), pl.col("net_amount").mean().alias("mean")
    )
    assert (per_customer["n"] > 1).mean() > 0.4  # repeat buyers
    assert (per_customer["n"] == 1).sum() > 0  # and one-off buyers
    assert 45 < completed["net_amount"].mean() < 90
    assert per_customer.filter(pl.col("n") >= 3)["mean"].std() > 10  # spend varies by customer
    assert per_customer.height < customers.height  # prospects never bought
    status = orders["status"].str.to_lowercase().value_counts(normalize=True)
    assert 0.85 < status.filter(pl.col("status") == "completed")["proportion"][0] < 0.95

    emails = orders["email"].drop_nulls()
    assert (emails != emails.str.strip_chars().str.to_lowercase()).mean() > 0.1  # identity mess

    reviews = read_source(small, "reviews")
    assert (reviews["customer_id"].is_null() & reviews["email"].is_not_null()).sum() > 0
    ratings = reviews["rating"].cast(pl.Int64, strict=False).drop_nulls()
    assert ratings.filter(ratings.is_between(1, 5)).mean() > 3.8
    votes = reviews["helpful_votes"].cast(pl.Int64, strict=False).drop_nulls()
    assert votes.max() > 20 * max(votes.median(), 1)  # heavy tail
    assert (reviews["verified_purchase"] == "true").mean() > 0.9

    social = read_source(small, "social")
    targets = social["target_handle"].drop_nulls().str.strip_chars("@").str.to_lowercase()
    counts = targets.value_counts(sort=True)["count"]
    top = counts.head(max(1, counts.len() // 100)).sum()
    assert top / counts.sum() > 0.15  # a few influencers collect many reactions
    own = social.filter(pl.col("event_type").str.to_lowercase().is_in(["tweet", "pin"]))
    assert own.filter(pl.col("target_handle").is_null()).height > 0
    handles = customers["social_handles"].drop_nulls()
    assert handles.str.contains(";").any()


def test_converted_referees_are_customers_who_signed_up_after_the_invitation(small):
    bad = ledger(small)
    customers = (
        read_source(small, "customers")
        .join(bad.select("file", "row", "kind"), on=["file", "row"], how="anti")
        .select(
            "customer_id",
            pl.col("email").str.strip_chars().str.to_lowercase(),
            pl.col("signup_date").str.to_date(),
        )
    )
    referrals = (
        read_source(small, "referrals")
        .join(bad.select("file", "row", "kind"), on=["file", "row"], how="anti")
        .with_columns(
            pl.col("referred_at").str.to_datetime(),
            pl.col("converted_at").str.to_datetime(),
            pl.col("referee_email").str.strip_chars().str.to_lowercase(),
        )
    )
    converted = referrals.filter(pl.col("converted_at").is_not_null())
    assert 0.2 < converted.height / referrals.height < 0.5
    by_id = converted.join(
        customers.select("customer_id", "signup_date"),
        left_on="referee_customer_id",
        right_on="customer_id",
        how="left",
    )
    by_email = converted.join(
        customers.select("email", "signup_date"),
        left_on="referee_email",
        right_on="email",
        how="left",
    )
    signup = by_id["signup_date"].fill_null(by_email["signup_date"])
    assert signup.null_count() == 0
    assert (signup > converted["referred_at"].dt.date()).all()
    assert (signup == converted["converted_at"].dt.date()).all()
    assert (
        (converted["referee_customer_id"] != converted["referrer_customer_id"])
        .fill_null(True)
        .all()
    )
    # Non-converted invitations go to people who are not customers.
    open_ = referrals.filter(pl.col("converted_at").is_null())
    assert not open_["referee_email"].is_in(customers["email"].implode()).any()
    answered = converted["would_have_joined_anyway"].is_not_null().mean()
    assert 0.2 < answered < 0.65  # about 40% answered


def test_the_bundled_sample_is_what_the_documented_command_writes(tmp_path):
    assert main(["--out", str(tmp_path), *SAMPLE_ARGS]) == 0
    assert files_of(tmp_path) == files_of(SAMPLE)
    _, mismatch, errors = filecmp.cmpfiles(
        SAMPLE, tmp_path, [str(p) for p in files_of(SAMPLE)], shallow=False
    )
    assert mismatch == [] and errors == []
    size = sum((SAMPLE / p).stat().st_size for p in files_of(SAMPLE))
    assert size < 5_000_000


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--customers", "0"], "customers must be at least 1"),
        (["--start", "2025-06-01", "--end", "2025-01-01"], "end must be after start"),
    ],
)
def test_an_option_out_of_range_is_one_line_and_writes_nothing(tmp_path, capsys, options, said):
    out = tmp_path / "exports"
    assert main(["--out", str(out), *options]) == 2
    assert capsys.readouterr().err.strip() == f"engagement-box generate: error: {said}"
    assert not out.exists()
