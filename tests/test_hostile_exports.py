"""Hostile exports (issue 13): each class is staged, quarantined with a reason, or refused with
the file named, before any table changes; and rows read = staged + quarantined + erased."""

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import duckdb
import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from assets.staging import staged_assets
from engagement_box.staging import reading
from engagement_box.staging.contracts import SOURCES, IngestError
from engagement_box.staging.ingestion import ingest_source
from engagement_box.staging.messages import cut_short_message
from engagement_box.staging.reconciliation import reconcile
from pipelines.resources import ExportsResource, Warehouse
from tests.conftest import ORDER_HEADER, good_order, write_csv

# The run's time of the unit tests: every test names it, none reads the clock.
NOW = dt.datetime(2026, 3, 1, 12, 0)

REFERRAL_HEADER = [
    "referral_id", "referrer_customer_id", "referee_email", "referee_customer_id", "referred_at",
    "converted_at", "referrer_reward", "referee_reward", "would_have_joined_anyway",
]  # fmt: skip


@pytest.fixture
def exports_dir(tmp_path: Path) -> Path:
    """An export folder laid out as a run expects: one (empty) folder per required source (a
    missing source folder stops a run before any step)."""
    path = tmp_path / "exports"
    for name, source in SOURCES.items():
        if source.folder_required:
            (path / name).mkdir(parents=True)
    return path


def quarantine(con) -> list[tuple]:
    return con.execute(
        'SELECT source_file, source_row, "column", reason, detail FROM staging.quarantine '
        "ORDER BY source_file, source_row"
    ).fetchall()


def staged_ids(con, table: str = "orders", key: str = "order_id") -> list[str]:
    return [
        r[0]
        for r in con.execute(
            f"SELECT {key} FROM staging.{table} ORDER BY source_file, source_row"
        ).fetchall()
    ]


def assert_reconciles(con, source: str = "orders") -> tuple[int, int, int, int, int]:
    files, read, staged, quarantined, erased = reconcile(con, source)
    assert read == staged + quarantined + erased
    return files, read, staged, quarantined, erased


def order_lines(*rows: dict[str, str]) -> str:
    return "\n".join([",".join(ORDER_HEADER), *(",".join(r.values()) for r in rows)]) + "\n"


def write_text(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def staged_first(warehouse, exports_dir) -> None:
    """A good file ingested before: a refused file must leave it (and the tables) as they were."""
    write_csv(exports_dir / "orders" / "a_good.csv", [good_order(1)])
    ingest_source(warehouse, exports_dir, "orders", now=NOW)


def assert_unchanged(warehouse) -> None:
    assert staged_ids(warehouse) == ["o1"]
    assert quarantine(warehouse) == []
    assert reconcile(warehouse, "orders") == (1, 1, 1, 0, 0)


# ----------------------------------------------------------------------------------------------
# 1. Repeated header names


def test_excels_trailing_empty_columns_are_ignored(warehouse, exports_dir):
    """Excel writes `...,channel,,,` when cells right of the table were ever touched: columns
    without a name are ignored, however many (they used to refuse the file as repeated)."""
    header = ",".join([*ORDER_HEADER, "", "", ""])
    row = ",".join([*good_order(1).values(), "", "", ""])
    write_text(exports_dir / "orders" / "excel.csv", f"{header}\n{row}\n")
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert staged_ids(warehouse) == ["o1"]
    assert report.ignored_columns == {}


def test_an_exactly_repeated_column_is_refused(warehouse, exports_dir):
    staged_first(warehouse, exports_dir)
    header = [*ORDER_HEADER, "net_amount"]
    rows = [good_order(2) | {"extra": "99.00"}]
    text = ",".join(header) + "\n" + ",".join([*good_order(2).values(), "99.00"]) + "\n"
    write_text(exports_dir / "orders" / "b_twice.csv", text)
    del rows

    with pytest.raises(IngestError, match=r"orders/b_twice\.csv: repeated column\(s\) net_amount"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert_unchanged(warehouse)


# ----------------------------------------------------------------------------------------------
# 2. Rows with fewer or more fields than the header


def referral_text(*lines: str) -> str:
    return "\n".join([",".join(REFERRAL_HEADER), *lines]) + "\n"


def test_a_short_row_is_quarantined_not_padded(warehouse, exports_dir):
    write_text(
        exports_dir / "referrals" / "r.csv",
        referral_text(
            "r1,c1,b@x.io,,2024-01-01,,5.00,25.00,",  # full row, empty optional last field
            "r2,c1,d@x.io,,2024-01-01,,5.00,2",  # cut mid-line: the reward would read 2
            "",  # a blank line
            "r4,c1,e@x.io,,2024-01-01,,5.00,25.00,yes",
        ),
    )
    report = ingest_source(warehouse, exports_dir, "referrals", now=NOW)

    assert staged_ids(warehouse, "referrals", "referral_id") == ["r1", "r4"]
    assert quarantine(warehouse) == [
        ("referrals/r.csv", 2, None, "wrong_field_count", "8 field(s) where the header has 9"),
        ("referrals/r.csv", 3, None, "wrong_field_count", "a blank line"),
    ]
    assert report.quarantine_by_reason == {"wrong_field_count": 2}
    assert assert_reconciles(warehouse, "referrals")[1:] == (4, 2, 2, 0)


def test_short_rows_are_found_in_a_file_with_line_breaks_inside_quoted_values(
    warehouse, exports_dir
):
    write_text(
        exports_dir / "referrals" / "r.csv",
        referral_text(
            'r1,c1,"b@x.io",,2024-01-01,,5.00,"25.00",',
            'r2,"c1\nsecond line",d@x.io,,2024-01-01,,5.00',
            'r3,"c, with a comma",e@x.io,,2024-01-01,,5.00,25.00,no',
        ),
    )
    ingest_source(warehouse, exports_dir, "referrals", now=NOW)
    assert staged_ids(warehouse, "referrals", "referral_id") == ["r1", "r3"]
    assert [q[1:4] for q in quarantine(warehouse)] == [(2, None, "wrong_field_count")]
    assert_reconciles(warehouse, "referrals")


def test_a_carriage_return_inside_a_value_does_not_shift_the_short_rows(warehouse, exports_dir):
    """A CR alone inside an unquoted value is part of the value (as the reader takes it): the
    short row found is the cut one, not the complete row after the CR (which was quarantined
    while the cut row was padded and staged)."""
    write_text(
        exports_dir / "referrals" / "r.csv",
        referral_text(
            'r1,c1,b@x.io,,2024-01-01,,5.00,25.00,"yes\nreally"',  # a line break: counted apart
            "r2,c1,ok\rfine@x.io,,2024-01-01,,5.00,25.00,no",
            "r3,c1,e@x.io,,2024-01-01,,5.00,25.00,",  # complete, empty optional last field
            "r4,c1,f@x.io,,2024-01-01,,5.00,25.00",  # cut: one field short
        ),
    )
    ingest_source(warehouse, exports_dir, "referrals", now=NOW)
    short = [q[1:] for q in quarantine(warehouse) if q[3] == "wrong_field_count"]
    assert short == [(4, None, "wrong_field_count", "8 field(s) where the header has 9")]
    assert "r3" in staged_ids(warehouse, "referrals", "referral_id")
    assert_reconciles(warehouse, "referrals")


def test_a_stray_quote_that_swallows_rows_refuses_the_file_naming_the_lines(warehouse, exports_dir):
    """A quote opened inside a value and closed rows later makes those rows one value: they
    would be lost without a trace (every count still reconciles). The file is refused, naming
    the line the value opens on and a line inside it that holds a whole row."""
    staged_first(warehouse, exports_dir)
    rows = [",".join(good_order(i).values()) for i in range(2, 6)]
    rows[1] = rows[1] + ',"Best purchase ever'  # an extra (ignored) column: a review's text
    rows[2] = rows[2] + ",broke after a day"
    rows[3] = rows[3] + ',perfect for my 10"'
    header = ",".join([*ORDER_HEADER, "note"])
    write_text(exports_dir / "orders" / "b_quote.csv", "\n".join([header, *rows]) + "\n")

    with pytest.raises(IngestError) as error:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    message = str(error.value)
    assert message.startswith("orders/b_quote.csv: the quoted value that opens on line 3")
    assert "line 4 inside it reads as a whole row" in message
    assert_unchanged(warehouse)


@pytest.mark.parametrize("part_bytes", [reading.LINE_BREAK_PART_BYTES, 1])
def test_values_with_line_breaks_are_looked_at_in_parts_with_the_same_finding(
    warehouse, exports_dir, monkeypatch, part_bytes
):
    """Values with line breaks are split into lines a part at a time (a file of 1 MB review
    texts took 5 times its size in memory, split whole): harmless multi-line notes in earlier
    parts, then a stray quote that swallows rows, is named on the same lines either way."""
    monkeypatch.setattr(reading, "LINE_BREAK_PART_BYTES", part_bytes)
    header = ",".join([*REFERRAL_HEADER, "note"])
    text = (
        f"{header}\n"
        'RFX1,C1,a@x.com,C9,2026-01-01 10:00:00,2026-01-05 10:00:00,10.00,5.00,yes,"one\ntwo"\n'
        'RFX2,C1,b@x.com,,2026-01-02 10:00:00,,10.00,5.00,,"a, b\nc, d"\n'
        'RFX3,C1,b@x.com,,2026-01-02 10:00:00,,10.00,5.00,,"VIP, called twice\n'
        "RFX4,C2,c@x.com,,2026-01-03 10:00:00,,10.00,5.00,,\n"
        'RFX5,C3,d@x.com,,2026-01-04 10:00:00,,10.00,5.00,,wants the 55"\n'
    )
    write_text(exports_dir / "referrals" / "r.csv", text)
    with pytest.raises(IngestError) as error:
        ingest_source(warehouse, exports_dir, "referrals", now=NOW)
    assert str(error.value).startswith("referrals/r.csv: the quoted value that opens on line 6")
    assert "line 7 inside it reads as a whole row" in str(error.value)


def test_a_swallowed_row_with_blank_optional_fields_still_refuses_the_file(warehouse, exports_dir):
    """A referral row leaves its conversion date and flag blank (optional): a stray quote that
    swallowed such rows was not seen, because a blank date does not parse as a date, and two
    referrals were lost while every count reconciled. A blank typed field now counts as a row's
    field, so the file is refused."""
    header = ",".join([*REFERRAL_HEADER, "note"])
    text = (
        f"{header}\n"
        "RFX1,C1,a@x.com,C9,2026-01-01 10:00:00,2026-01-05 10:00:00,10.00,5.00,yes,\n"
        'RFX2,C1,b@x.com,,2026-01-02 10:00:00,,10.00,5.00,,"VIP, called twice\n'
        "RFX3,C2,c@x.com,,2026-01-03 10:00:00,,10.00,5.00,,\n"
        'RFX4,C3,d@x.com,,2026-01-04 10:00:00,,10.00,5.00,,wants the 55"\n'
        "RFX5,C4,e@x.com,,2026-01-05 10:00:00,,10.00,5.00,,\n"
    )
    write_text(exports_dir / "referrals" / "r.csv", text)
    with pytest.raises(IngestError) as error:
        ingest_source(warehouse, exports_dir, "referrals", now=NOW)
    assert str(error.value).startswith("referrals/r.csv: the quoted value that opens on line 3")
    assert "line 4 inside it reads as a whole row" in str(error.value)


def test_a_quoted_value_longer_than_pythons_csv_limit_is_read(warehouse, exports_dir):
    """A review body of 200,000 characters over two lines, and a row whose last field is empty
    (so its fields are counted): the step failed on "field larger than field limit (131072)",
    naming no file. The file is read; the long value is an ignored column."""
    header = "review_id,customer_id,email,product_id,rating,helpful_votes,verified_purchase,created_at,body"
    body = "x" * 100_000 + "\n" + "y" * 100_000
    text = (
        f"{header}\n"
        f'R1,C1,,P1,5,0,true,2025-01-01 10:00:00,"{body}"\n'
        "R2,C2,,P1,4,1,true,2025-01-02 10:00:00,\n"
    )
    write_text(exports_dir / "reviews" / "r.csv", text)
    ingest_source(warehouse, exports_dir, "reviews", now=NOW)
    assert assert_reconciles(warehouse, "reviews")[1:] == (2, 2, 0, 0)


def test_a_header_row_longer_than_the_first_read_is_read_whole(warehouse, exports_dir):
    """A wide export (3,000 custom attributes before the contract's columns, a 69 KB header)
    was refused as missing every required column, with a 68 KB message ending in a name cut
    in two: the header was read from the file's first 64 KiB only."""
    attributes = [f"custom_attribute_{i:05d}" for i in range(3000)]
    order = good_order(1)
    header = ",".join([*attributes, *order])
    write_text(
        exports_dir / "orders" / "wide.csv",
        header + "\n" + "," * 3000 + ",".join(order.values()) + "\n",
    )
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert staged_ids(warehouse) == ["o1"] and quarantine(warehouse) == []
    assert report.ignored_columns["orders/wide.csv"][-1] == "custom_attribute_02999"
    # a wide header without the contract's columns: a short message
    write_text(exports_dir / "orders" / "wider.csv", ",".join(attributes) + "\n1\n")
    with pytest.raises(IngestError) as refused:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    said = str(refused.value)
    assert "missing required column(s) order_id" in said
    assert "none of its 3,000 names is a column of orders" in said  # none shown
    assert len(said) < 1000


def test_a_quote_the_header_never_closes_is_named(warehouse, exports_dir):
    """A header opening a quote it never closes read the whole file as one name: the run said
    "missing required column(s)" and showed the file's rows as the header found."""
    staged_first(warehouse, exports_dir)
    text = '"' + order_lines(good_order(2))
    write_text(exports_dir / "orders" / "b.csv", text)
    with pytest.raises(IngestError, match=r"header row\) opens a quote \(\"\) that is never"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert_unchanged(warehouse)


def test_a_header_only_file_with_a_quoted_line_break_in_a_name_stages_nothing(
    warehouse, exports_dir
):
    """An empty export (its header alone) naming a column `"delivery\nnote"` was refused as a
    quote never closed (a re-review): the quote closes, the file stages no row."""
    header = '"delivery\nnote",' + ",".join(good_order(1))
    write_text(exports_dir / "orders" / "empty.csv", header + "\n")
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert report.rows_read == 0 and staged_ids(warehouse) == []


def test_a_header_of_one_huge_name_is_said_in_a_short_message(warehouse, exports_dir):
    """A wide export saved with semicolons is one 69 KB header name: the refusal quoted it
    whole (a re-review); each name is now shortened."""
    attributes = [f"custom_attribute_{i:05d}" for i in range(3000)]
    header = ";".join([*attributes, *good_order(1)])
    write_text(exports_dir / "orders" / "wide.csv", header + "\n" + "1;" * 3007 + "1\n")
    with pytest.raises(IngestError) as refused:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    said = str(refused.value)
    assert "the header is one name holding ';'" in said and len(said) < 1000


def test_a_large_file_whose_lines_end_with_cr_alone_is_said_so(warehouse, exports_dir):
    """A header past 64 KiB is read on to its line break; a file of over 64 MiB with CR alone
    has none, and would be refused as "a header row longer than 64 MiB"."""
    header = ",".join(["x" * 70_000, *good_order(1)])
    row = ",".join(["", *good_order(1).values()])
    body = (row + "\r") * (2**26 // len(row) + 1)
    write_text(exports_dir / "orders" / "mac.csv", header + "\r" + body)
    with pytest.raises(IngestError, match="its lines end with CR alone"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)


def test_header_variants_of_a_column_are_its_column(warehouse, exports_dir):
    """`Social Handles`, `Converted-At`: an export tool's header variants of optional columns
    were ignored, and every handle and conversion lost while the run said nothing."""
    header = (
        "Referral ID,referrer_customer_id,Referee Email,referee_customer_id,referred_at,"
        "Converted-At,referrer_reward,referee_reward,would.have.joined.anyway"
    )
    row = "r1,c1,b@x.io,,2024-01-01 10:00:00,2024-01-03 10:00:00,5.00,25.00,yes"
    write_text(exports_dir / "referrals" / "r.csv", f"{header}\n{row}\n")
    report = ingest_source(warehouse, exports_dir, "referrals", now=NOW)
    assert report.ignored_columns == {}
    staged = warehouse.execute(
        "SELECT referee_email, converted_at, would_have_joined_anyway FROM staging.referrals"
    ).fetchall()
    assert staged == [("b@x.io", dt.datetime(2024, 1, 3, 10), True)]


# Header names an export tool writes for the contract's columns, each read as its column:
# `E-Mail` (a German export's spelling), `CustomerID` and `orderId` were ignored (the email, and
# with it every order's link to its buyer's other sources, lost with a warning); `email` followed
# by a zero-width space was "ignored: not a column" and `order_id` so written "missing (found:
# order_id, ...)".
HEADER_SPELLINGS = {
    "without underscores": {"order_id": "orderId", "customer_id": "CustomerID", "email": "E-Mail"},
    "invisible characters": {
        "order_id": "\u200border_id",
        "email": "email\u200b",
        "channel": "channel\u2060",
    },
}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("spelling", sorted(HEADER_SPELLINGS))
def test_a_header_spelling_a_column_otherwise_is_its_column(warehouse, exports_dir, kind, spelling):
    names = HEADER_SPELLINGS[spelling]
    row = good_order(1)
    renamed = {names.get(k, k): v for k, v in row.items()}
    path = exports_dir / "orders" / f"o.{kind}"
    if kind == "csv":
        write_text(path, ",".join(renamed) + "\n" + ",".join(renamed.values()) + "\n")
    else:
        pl.DataFrame([renamed]).write_parquet(path)
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert report.ignored_columns == {}
    columns = ", ".join(names)
    staged = warehouse.execute(f"SELECT {columns} FROM staging.orders").fetchall()
    assert staged == [tuple(row[c] for c in names)]


def test_no_two_columns_of_a_source_are_one_name_without_underscores():
    """A header written without separators (`customerid`) names one column: were two columns
    one name so (`order_id` and a later `orderid`), such a header's column would be a guess."""
    for source in SOURCES.values():
        squeezed = [c.replace("_", "") for c in source.columns]
        assert len(set(squeezed)) == len(squeezed), source.name


def test_a_header_naming_a_column_and_a_variant_keeps_the_column(warehouse, exports_dir):
    """`order_id` and `Order ID` in one header: the exact name is the column, the variant an
    extra column, named as the file writes it (it refused the file as a repeated column). Two
    variants of one column, and no exact name, are refused as repeated."""
    header = ",".join([*ORDER_HEADER, "Order ID"])
    row = ",".join([*good_order(1).values(), "legacy-7"])
    write_text(exports_dir / "orders" / "a.csv", f"{header}\n{row}\n")
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert report.ignored_columns == {"orders/a.csv": ["Order ID"]}
    assert staged_ids(warehouse, "orders", "order_id") == [good_order(1)["order_id"]]

    both = ",".join(["Order ID", "order-id", *ORDER_HEADER[1:]])
    write_text(exports_dir / "orders" / "b.csv", f"{both}\n")
    with pytest.raises(IngestError, match="repeated column"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)


def test_a_quoted_address_with_blank_parts_is_a_value(warehouse, exports_dir):
    """A correctly quoted address whose second line has as many commas as a row, blanks where
    the required order time is and a ZIP code where the amount is: a value, not a swallowed
    row (a blank counts as a row's field only in an optional column)."""
    header = ",".join([*ORDER_HEADER, "shipping_address"])
    address = '"Jane Doe\n12 Main St, Apt 4, , , 62704, Springfield, IL, US, "'
    row = ",".join([*good_order(1).values(), address])
    write_text(exports_dir / "orders" / "a.csv", f"{header}\n{row}\n")
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert assert_reconciles(warehouse, "orders")[1:] == (1, 1, 0, 0)


def test_a_file_quarantined_whole_is_counted_per_file(warehouse, exports_dir):
    rows = [good_order(i) | {"ordered_at": "11/01/2025 20:57"} for i in range(1, 4)]
    write_csv(exports_dir / "orders" / "us_dates.csv", rows)
    write_csv(exports_dir / "orders" / "fine.csv", [good_order(9)])
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert report.quarantined_files == {"orders/us_dates.csv": [3, 3]}


def test_a_trailing_comma_on_the_header_alone_quarantines_nothing(warehouse, exports_dir):
    """`...,channel,` on the header line only (an unnamed last column the rows do not carry):
    every row was quarantined as `wrong_field_count`. A row that lacks a named field still is."""
    rows = [",".join(good_order(i).values()) for i in range(1, 4)]
    rows[2] = rows[2].rsplit(",", 1)[0]  # the channel cut off: short
    text = ",".join(ORDER_HEADER) + ",\n" + "\n".join(rows) + "\n"
    write_text(exports_dir / "orders" / "a.csv", text)
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    short = [q[1:] for q in quarantine(warehouse) if q[3] == "wrong_field_count"]
    assert short == [(3, None, "wrong_field_count", "7 field(s) where the header has 8")]
    assert_reconciles(warehouse, "orders")


def test_a_value_with_line_breaks_and_commas_is_still_a_value(warehouse, exports_dir):
    """Text with line breaks and a few commas is a value like any other: not taken for rows."""
    header = ",".join([*REFERRAL_HEADER, "note"])
    row = 'r1,c1,b@x.io,,2024-01-01,,5.00,25.00,yes,"first\nsecond, third\nfourth, fifth, sixth"'
    write_text(exports_dir / "referrals" / "r.csv", f"{header}\n{row}\n")
    ingest_source(warehouse, exports_dir, "referrals", now=NOW)
    assert assert_reconciles(warehouse, "referrals")[1:] == (1, 1, 0, 0)


def test_an_unquoted_inch_mark_refuses_the_file_naming_the_line_and_value(warehouse, exports_dir):
    staged_first(warehouse, exports_dir)
    header = ",".join([*ORDER_HEADER, "product"])
    rows = [
        ",".join([*good_order(i).values(), name]) for i, name in ((2, "kettle"), (3, 'TV 55" LED'))
    ]
    write_text(exports_dir / "orders" / "b_inch.csv", "\n".join([header, *rows]) + "\n")

    with pytest.raises(IngestError) as error:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert str(error.value) == (
        'orders/b_inch.csv: line 3 has a " inside a value that is not quoted (TV 55" LED); '
        'quote the value and double the quote ("TV 55"" LED"), then run again'
    )
    assert_unchanged(warehouse)


@pytest.mark.parametrize(
    ("customer_id", "shown"),
    [
        ('="00123"', '="00123"'),  # a spreadsheet's guard for leading zeros
        ('a""b', 'a""b'),
        ('x "C1"', 'x "C1"'),  # text before the spaces and the quote: not a quoted value
    ],
)
def test_quotes_inside_a_value_that_polars_reads_refuse_the_file_naming_the_line_and_value(
    warehouse, exports_dir, customer_id, shown
):
    """An even number of quotes inside an unquoted value: polars reads the file and would stage
    the quotes as part of the id (no customer's), where the contract refuses it (a review)."""
    staged_first(warehouse, exports_dir)
    rows = [
        ",".join(good_order(2).values()),
        ",".join({**good_order(3), "customer_id": customer_id}.values()),
    ]
    write_text(
        exports_dir / "orders" / "b_quotes.csv", "\n".join([",".join(ORDER_HEADER), *rows]) + "\n"
    )

    with pytest.raises(IngestError) as error:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert str(error.value) == (
        f'orders/b_quotes.csv: line 3 has a " inside a value that is not quoted ({shown}); '
        'quote the value and double the quote ("TV 55"" LED"), then run again'
    )
    assert_unchanged(warehouse)


def test_quoted_values_with_doubled_quotes_and_quotes_after_spaces_are_read(warehouse, exports_dir):
    rows = [
        ",".join({**good_order(2), "customer_id": '"C""2"'}.values()),
        ",".join({**good_order(3), "customer_id": ' "C3"'}.values()),
    ]
    write_text(
        exports_dir / "orders" / "b_quoted.csv",
        "\ufeff" + "\r\n".join([",".join(f'"{h}"' for h in ORDER_HEADER), *rows]) + "\r\n",
    )
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert staged_ids(warehouse, key="customer_id") == ['C"2', "C3"]
    assert quarantine(warehouse) == []


def test_review_text_with_as_many_commas_as_a_row_is_still_a_value(warehouse, exports_dir):
    """A correctly quoted review whose second line has as many commas as a row has separators:
    a line inside a value reads as a row only when its typed fields parse (here none does)."""
    header = "review_id,customer_id,email,product_id,rating,helpful_votes,verified_purchase,created_at,body"
    text = (
        f"{header}\n"
        'R1,C1,,P1,5,0,true,2025-01-01 10:00:00,"Great kettle.\n'
        'Pros: light, quiet, cheap, fast, sturdy, warm, pretty, cosy, and it looks nice."\n'
        "R2,C2,,P1,4,1,true,2025-01-02 10:00:00,fine\n"
    )
    write_text(exports_dir / "reviews" / "r.csv", text)
    ingest_source(warehouse, exports_dir, "reviews", now=NOW)
    assert staged_ids(warehouse, "reviews", "review_id") == ["R1", "R2"]


def test_a_row_with_too_many_fields_refuses_the_file_naming_the_line(warehouse, exports_dir):
    staged_first(warehouse, exports_dir)
    text = order_lines(good_order(2), good_order(3)) + ",".join(
        [*good_order(4).values(), "surplus"]
    )
    write_text(exports_dir / "orders" / "b_long.csv", text + "\n")

    with pytest.raises(IngestError) as error:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    message = str(error.value)
    assert message.startswith("orders/b_long.csv: line 4 has 9 fields but the header has 8")
    assert "truncate_ragged_lines" not in message and "Consider" not in message
    assert_unchanged(warehouse)


# ----------------------------------------------------------------------------------------------
# 3. Nested Parquet types


@pytest.mark.parametrize(("odd", "plain"), [("x[1]", "x1"), ("y*", "yz"), ("z?", "za")])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_whose_name_holds_a_pattern_character_is_read_itself(
    warehouse, exports_dir, odd, plain, suffix
):
    """polars reads `[`, `*` and `?` in a path as a pattern of file names: `orders/x[1].csv`
    staged the rows of `orders/x1.csv` under its own name, and its own row was lost (a
    review)."""
    for name, i in ((odd, 1), (plain, 2)):
        path = exports_dir / "orders" / f"{name}{suffix}"
        if suffix == ".csv":
            write_csv(path, [good_order(i)])
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            pl.DataFrame([good_order(i)]).write_parquet(path)
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    rows = warehouse.execute(
        "SELECT order_id, source_file FROM staging.orders ORDER BY order_id"
    ).fetchall()
    assert rows == [("o1", f"orders/{odd}{suffix}"), ("o2", f"orders/{plain}{suffix}")]
    assert quarantine(warehouse) == []


@pytest.mark.parametrize(
    ("column", "values", "words"),
    [
        ("product_id", [{"sku": "P1", "n": 2}], "product_id holds nested records"),
        ("product_id", [["P1", "P2"]], "product_id holds lists"),
        ("rating", [{"stars": 5}], "rating holds nested records"),
        ("created_at", [True], "created_at holds values of type Boolean"),
    ],
)
def test_a_parquet_column_of_the_wrong_type_is_refused_before_any_change(
    warehouse, exports_dir, column, values, words
):
    review = {
        "review_id": "v1", "customer_id": "c1", "email": "", "product_id": "P1", "rating": "5",
        "helpful_votes": "0", "verified_purchase": "true", "created_at": "2024-01-01",
    }  # fmt: skip
    (exports_dir / "reviews").mkdir(exist_ok=True)
    pl.DataFrame([review]).write_parquet(exports_dir / "reviews" / "a.parquet")
    ingest_source(warehouse, exports_dir, "reviews", now=NOW)
    bad = pl.DataFrame([review | {"review_id": "v2"}]).with_columns(pl.Series(column, values))
    bad.write_parquet(exports_dir / "reviews" / "b.parquet")

    with pytest.raises(IngestError, match=rf"reviews/b\.parquet: column {words}") as error:
        ingest_source(warehouse, exports_dir, "reviews", now=NOW)
    assert "the contract wants" in str(error.value)
    assert staged_ids(warehouse, "reviews", "review_id") == ["v1"]
    assert reconcile(warehouse, "reviews") == (1, 1, 1, 0, 0)


def test_decimals_of_more_digits_than_read_are_named_not_called_damage(warehouse, exports_dir):
    """A decimal256(40, 2) amount: the file was refused as "not a Parquet file, or a damaged one
    (precision must be between 1 and 38, got 40)". The column and its digits are named; the
    same type in a column the contract does not read is ignored."""
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    (exports_dir / "orders").mkdir(exist_ok=True)
    table = pa.Table.from_pylist([good_order(1)]).append_column(
        "tax", pa.array([decimal.Decimal("1.50")], pa.decimal256(40, 2))
    )
    pq.write_table(table, exports_dir / "orders" / "a.parquet")
    assert ingest_source(warehouse, exports_dir, "orders", now=NOW).rows_staged == 1
    amount = table.schema.get_field_index("net_amount")
    wide = table.set_column(
        amount, "net_amount", pa.array([decimal.Decimal("11.50")], pa.decimal256(40, 2))
    ).set_column(0, "order_id", pa.array(["o2"]))
    pq.write_table(wide, exports_dir / "orders" / "b.parquet")
    with pytest.raises(IngestError) as error:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert str(error.value) == (
        "orders/b.parquet: column net_amount holds decimals of 40 digits; the ingest reads at "
        "most 38 (write them as decimals of 38 digits or fewer, or as floats)"
    )
    assert staged_ids(warehouse) == ["o1"]


def test_a_parquet_boolean_written_as_integers_is_read_as_in_csv(warehouse, exports_dir):
    """An int8 0/1 column (databases without a boolean type) refused the whole file, while a
    CSV's 1/0 was read: 1/0 are booleans here too, and 2 is quarantined."""
    (exports_dir / "reviews").mkdir(exist_ok=True)
    pl.DataFrame(
        {"review_id": ["v1", "v2", "v3"], "customer_id": ["c1"] * 3, "product_id": ["P1"] * 3,
         "rating": [5] * 3, "helpful_votes": [0] * 3, "created_at": ["2024-01-01"] * 3}
    ).with_columns(
        pl.Series("verified_purchase", [1, 0, 2], dtype=pl.Int8)
    ).write_parquet(exports_dir / "reviews" / "a.parquet")  # fmt: skip
    ingest_source(warehouse, exports_dir, "reviews", now=NOW)
    staged = warehouse.execute(
        "SELECT review_id, verified_purchase FROM staging.reviews ORDER BY review_id"
    ).fetchall()
    assert staged == [("v1", True), ("v2", False)]
    assert [q[3] for q in quarantine(warehouse)] == ["unparseable_boolean"]


def test_typed_and_ignored_parquet_columns_are_still_read(warehouse, exports_dir):
    (exports_dir / "orders").mkdir(exist_ok=True)
    frame = pl.DataFrame([good_order(1)]).with_columns(
        pl.col("net_amount").cast(pl.Float64),
        pl.col("ordered_at").str.to_datetime(),
        pl.Series("basket", [[{"sku": "P1"}]]),  # nested, but not a contract column
        # a name that would start a line of its own in the run's log (a review): escaped
        pl.Series("tab\tnl\nend", ["x"]),
    )
    frame.write_parquet(exports_dir / "orders" / "a.parquet")
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert report.rows_staged == 1
    assert report.ignored_columns == {"orders/a.parquet": ["basket", "tab\\tnl\\nend"]}


def test_a_timestamp_at_a_fixed_offset_is_read_as_its_instant(warehouse, exports_dir):
    """pandas writes ISO text with an offset such as +05:30 as a timestamp whose zone is
    "+05:30": polars panicked on the file (a Rust backtrace, the file not named). It is now
    read through Arrow as the instant it is, in UTC, as named zones are."""
    import pandas as pd

    (exports_dir / "orders").mkdir(exist_ok=True)
    frame = pd.DataFrame([good_order(1), good_order(2)])
    frame["ordered_at"] = pd.to_datetime(
        pd.Series(["2024-01-10T10:00:00+05:30", "2024-01-10T23:00:00+05:30"])
    )
    frame.to_parquet(exports_dir / "orders" / "india.parquet", index=False)
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert report.rows_staged == 2
    assert warehouse.execute(
        "SELECT order_id, ordered_at FROM staging.orders ORDER BY order_id"
    ).fetchall() == [
        ("o1", dt.datetime(2024, 1, 10, 4, 30)),
        ("o2", dt.datetime(2024, 1, 10, 17, 30)),
    ]


@pytest.mark.parametrize("zone", ["-05:00", "-0500", "-05"])
def test_a_date_at_a_fixed_offset_in_parquet_keeps_the_day_it_was_written_on(
    warehouse, exports_dir, zone
):
    """A signup at 23:30 on 1 March at -05:00, written by pandas as a timestamp whose zone is
    "-05:00", was staged as 2 March (its UTC day), where the same value as text or at a named
    zone keeps 1 March (the date written, docs/CONTRACTS.md). The zone written `-05` (which
    pyarrow writes and reads) still gave the UTC day."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    (exports_dir / "customers").mkdir(exist_ok=True)
    frame = pd.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "email": ["c1@example.com", "c2@example.com"],
            "signup_date": pd.to_datetime(
                pd.Series(["2024-03-01T23:30:00-05:00", "2024-03-02T00:15:00-05:00"])
            ),
            "loyalty_member": [True, False],
            "marketing_consent": [False, False],
            "country": ["US", "US"],
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    at_zone = pa.timestamp("us", zone)
    table = table.set_column(2, pa.field("signup_date", at_zone), table[2].cast(at_zone))
    pq.write_table(table, exports_dir / "customers" / "c.parquet")
    ingest_source(warehouse, exports_dir, "customers", now=NOW)
    assert warehouse.execute(
        "SELECT customer_id, signup_date FROM staging.customers ORDER BY customer_id"
    ).fetchall() == [("c1", dt.date(2024, 3, 1)), ("c2", dt.date(2024, 3, 2))]


def test_linked_folders_are_read_and_a_link_to_nothing_or_a_foreign_name_is_refused(
    warehouse, exports_dir, tmp_path
):
    """A folder linked into orders/ (an archive kept elsewhere) was skipped without a word, as
    was a link to a missing file; a file name in another system's encoding failed the run with
    "Unable to cast Python instance of type <class 'str'> to C++ type"."""
    archive = write_csv(tmp_path / "archive" / "2023" / "orders_2023.csv", [good_order(3)]).parent
    (exports_dir / "orders").mkdir(parents=True, exist_ok=True)
    (exports_dir / "orders" / "2023").symlink_to(archive, target_is_directory=True)
    (exports_dir / "orders" / "2023" / "loop").symlink_to(archive, target_is_directory=True)
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert report.rows_staged == 1 and staged_ids(warehouse) == ["o3"]

    (exports_dir / "orders" / "gone.csv").symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(IngestError, match=r"orders/gone\.csv: a link to a file that is not there"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    (exports_dir / "orders" / "gone.csv").unlink()

    foreign = Path(os.fsdecode(bytes(exports_dir / "orders") + b"/Bestellungen_M\xe4rz.csv"))
    foreign.write_text(order_lines(good_order(4)))
    with pytest.raises(IngestError, match="Bestellungen_M\ufffdrz.csv: the file name is not UTF-8"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert staged_ids(warehouse) == ["o3"]


# ----------------------------------------------------------------------------------------------
# Encodings


@pytest.mark.parametrize(
    ("encoding", "words"),
    [("utf-16", "encoded as UTF-16"), ("utf-16-le", "NUL bytes"), ("utf-32", "UTF-32")],
)
def test_a_file_not_in_utf8_is_reported_as_such(warehouse, exports_dir, encoding, words):
    staged_first(warehouse, exports_dir)
    write_text(exports_dir / "orders" / "b.csv", order_lines(good_order(2)).encode(encoding))
    with pytest.raises(IngestError, match=rf"orders/b\.csv: unreadable \.csv file: .*{words}"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert_unchanged(warehouse)


@pytest.mark.parametrize("rows_before", [0, 3000])  # in the first 64 KiB read, and far after
def test_a_nul_byte_refuses_the_file_naming_its_line(warehouse, exports_dir, rows_before):
    """A stray NUL in UTF-8 text was called "UTF-16 or binary data" near the top of a file and
    staged inside a value (`c\\01`) further down. Either way the file is refused, naming the line."""
    staged_first(warehouse, exports_dir)
    rows = [good_order(i) for i in range(2, rows_before + 3)]
    rows[-1]["customer_id"] = "c\x001"
    write_text(exports_dir / "orders" / "b_nul.csv", order_lines(*rows))
    with pytest.raises(IngestError) as error:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert str(error.value) == (
        f"orders/b_nul.csv: unreadable .csv file: line {rows_before + 2} holds a NUL byte (\\0), "
        "which no text value may hold (a damaged export, or a tool's padding); remove it and run "
        "again"
    )
    assert_unchanged(warehouse)


@pytest.mark.parametrize("dictionary", [False, True])
def test_a_nul_in_a_parquet_text_value_refuses_the_file_as_in_a_csv(
    warehouse, exports_dir, dictionary
):
    """A NUL in a Parquet string was staged inside the value (`x8@exa\\0mple.com`) and written
    so into the audience files, where a CSV file holding one is refused. The Parquet file is
    refused too, naming the row and the column, dictionary-encoded or not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    staged_first(warehouse, exports_dir)
    rows = [good_order(i) for i in range(2, 5)]
    rows[1]["email"] = "x8@exa\x00mple.com"
    table = pa.Table.from_pylist(rows)
    if dictionary:
        table = table.set_column(
            table.schema.get_field_index("email"), "email", table["email"].dictionary_encode()
        )
    pq.write_table(table, exports_dir / "orders" / "b_nul.parquet")
    with pytest.raises(IngestError) as error:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert str(error.value) == (
        "orders/b_nul.parquet: unreadable .parquet file: row 2 holds a NUL character (\\0) in "
        "email, which no text value may hold (a damaged export, or a tool's padding); remove "
        "it and run again"
    )
    assert_unchanged(warehouse)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\x1f\x8b\x08\x00" + bytes(40), "a gzip-compressed file"),
        (b"PAR1" + bytes(40), "a Parquet file (name it .parquet)"),
        (b"PK\x03\x04" + bytes(40), "a ZIP archive, or an Excel workbook"),
    ],
    ids=["gzip", "parquet", "zip"],
)
def test_a_file_of_another_kind_named_csv_says_what_it_is(warehouse, exports_dir, content, words):
    """A compressed export or a Parquet file named .csv was refused as "UTF-16 or binary data"
    or as holding "a NUL byte (a tool's padding)": advice that does not fit."""
    staged_first(warehouse, exports_dir)
    write_text(exports_dir / "orders" / "b.csv", content)
    with pytest.raises(IngestError) as refused:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert str(refused.value).startswith(
        f"orders/b.csv: unreadable .csv file: not CSV text: it is {words}"
    )
    assert_unchanged(warehouse)


def test_latin1_text_names_the_line(warehouse, exports_dir):
    staged_first(warehouse, exports_dir)
    row = good_order(2) | {"customer_id": "Zoë"}
    write_text(exports_dir / "orders" / "b.csv", order_lines(good_order(3), row).encode("latin-1"))
    with pytest.raises(IngestError, match=r"orders/b\.csv: .*line 3 is not UTF-8 text"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert_unchanged(warehouse)


# ----------------------------------------------------------------------------------------------
# 5. Timestamps in the future


def test_a_time_before_the_year_one_is_quarantined_not_a_failure_of_the_source(
    warehouse, exports_dir
):
    """polars reads the year 0 (`0000-01-01`, or .NET's DateTime.MinValue written with a European
    offset, which is in the year 0 in UTC); the contract checks then failed the whole source
    with "year 0 is out of range", naming no file, and every later run failed the same way."""
    rows = [good_order(1), good_order(2), good_order(3)]
    rows[1]["ordered_at"] = "0000-01-01 10:00:00"
    rows[2]["ordered_at"] = "0001-01-01T00:00:00+01:00"
    write_csv(exports_dir / "orders" / "a.csv", rows)
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert (report.rows_staged, report.rows_quarantined) == (1, 2)
    assert [(q[1], q[3]) for q in quarantine(warehouse)] == [
        (2, "unparseable_timestamp"),
        (3, "unparseable_timestamp"),
    ]
    customer = {
        "customer_id": "c1", "email": "a@x.io", "social_handles": "", "signup_date": "0000-01-01",
        "loyalty_member": "no", "marketing_consent": "yes", "country": "US",
    }  # fmt: skip
    write_csv(exports_dir / "customers" / "c.csv", [customer])
    report = ingest_source(warehouse, exports_dir, "customers", now=NOW)
    assert (report.rows_staged, report.rows_quarantined) == (0, 1)


def test_parquet_times_outside_the_years_1_to_9999_are_quarantined_naming_the_number(
    warehouse, exports_dir
):
    """Epoch nanoseconds written into a millisecond column stopped the ingest with a panic of
    polars (a Rust backtrace on the console, no file named); so did a date32 of 2**31 - 1, and
    the year 1 in a zone west of UTC was the year 0 in UTC, as above."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (exports_dir / "orders").mkdir(exist_ok=True)
    rows = pl.DataFrame([good_order(1), good_order(2)]).drop("ordered_at").to_arrow()
    stamps = pa.array([1_700_000_000_000, 1_700_000_000_000_000_000], pa.timestamp("ms"))
    pq.write_table(rows.append_column("ordered_at", stamps), exports_dir / "orders" / "a.parquet")
    west = pa.array(
        [dt.datetime(1, 1, 1), dt.datetime(2024, 1, 1)], pa.timestamp("us", tz="America/New_York")
    )
    rows = pl.DataFrame([good_order(3), good_order(4)]).drop("ordered_at").to_arrow()
    pq.write_table(rows.append_column("ordered_at", west), exports_dir / "orders" / "b.parquet")
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert staged_ids(warehouse) == ["o1", "o4"]
    assert [(q[0], q[1], q[3]) for q in quarantine(warehouse)] == [
        ("orders/a.parquet", 2, "unparseable_timestamp"),
        ("orders/b.parquet", 1, "unparseable_timestamp"),
    ]
    assert (
        "1700000000000000000 milliseconds since 1970-01-01 (out of range)"
        in (quarantine(warehouse)[0][4])
    )
    assert report.rows_quarantined == 2

    (exports_dir / "customers").mkdir(exist_ok=True)
    # 2**31 - 1 days is out of any calendar; 0001-01-01 is a date, before the contract's floor
    days = pa.array([19_000, 2**31 - 1, -719_162], pa.date32())
    customers = pa.table(
        {"customer_id": ["c1", "c2", "c3"], "email": ["a@x.io", "b@x.io", "c@x.io"],
         "signup_date": days, "loyalty_member": [False] * 3, "marketing_consent": [True] * 3,
         "country": ["US"] * 3}
    )  # fmt: skip
    pq.write_table(customers, exports_dir / "customers" / "c.parquet")
    report = ingest_source(warehouse, exports_dir, "customers", now=NOW)
    assert (report.rows_staged, report.rows_quarantined) == (1, 2)
    assert [(q[1], q[3]) for q in quarantine(warehouse) if q[0] == "customers/c.parquet"] == [
        (2, "unparseable_date"),
        (3, "out_of_range"),
    ]


def test_timestamps_after_the_run_time_plus_a_day_are_quarantined_in_future(warehouse, exports_dir):
    write_csv(
        exports_dir / "orders" / "a.csv",
        [
            good_order(1) | {"ordered_at": "2026-03-02 12:00:00"},  # now + 1 day: accepted
            good_order(2) | {"ordered_at": "2026-03-02 12:00:01"},
            good_order(3) | {"ordered_at": "2099-01-01"},
            good_order(4) | {"ordered_at": "2026-03-02T13:00:00+02:00"},  # 11:00 UTC: accepted
        ],
    )
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert staged_ids(warehouse) == ["o1", "o4"]
    got = quarantine(warehouse)
    assert [q[1:4] for q in got] == [(2, "ordered_at", "in_future"), (3, "ordered_at", "in_future")]
    assert (
        got[1][4] == "2099-01-01 00:00:00 is after the run's time 2026-03-01 12:00 UTC plus 1 day"
    )
    assert_reconciles(warehouse)


def test_a_future_signup_date_is_quarantined(warehouse, exports_dir):
    customer = {
        "customer_id": "c1", "email": "a@x.io", "social_handles": "", "signup_date": "2026-03-02",
        "loyalty_member": "no", "marketing_consent": "yes", "country": "US",
    }  # fmt: skip
    write_csv(
        exports_dir / "customers" / "c.csv",
        [customer, customer | {"customer_id": "c2", "signup_date": "2026-03-03"}],
    )
    ingest_source(warehouse, exports_dir, "customers", now=NOW)
    assert staged_ids(warehouse, "customers", "customer_id") == ["c1"]
    assert [q[1:4] for q in quarantine(warehouse)] == [(2, "signup_date", "in_future")]


# ----------------------------------------------------------------------------------------------
# Through the assets: the staging asset fails with the file named, or passes its check


def working_warehouse(database: Path) -> Warehouse:
    """The warehouse resource whose working database (where steps write) is `database`."""
    return Warehouse(
        database=str(database.with_name("published.duckdb")), working_database=str(database)
    )


def materialize_staging(exports: Path, database: Path, source: str = "orders"):
    asset = next(a for a in staged_assets if a.key == dg.AssetKey(["staging", source]))
    return dg.materialize(
        [asset],
        resources={
            "warehouse": working_warehouse(database),
            "exports": ExportsResource(data_dir=str(exports)),
        },
        raise_on_error=False,
    )


def failure_message(result) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.message + str(failure.event_specific_data)


HOSTILE_FILES = {
    "repeated_header": (
        "b.csv",
        ",".join([*ORDER_HEADER, "net_amount"]) + "\n" + ",".join(good_order(5).values()) + ",1\n",
        "orders/b.csv: repeated column(s) net_amount",
    ),
    "too_many_fields": (
        "b.csv",
        order_lines(good_order(5)) + ",".join([*good_order(6).values(), "x"]) + "\n",
        "orders/b.csv: line 3 has 9 fields but the header has 8",
    ),
    "utf16": ("b.csv", order_lines(good_order(5)).encode("utf-16"), "encoded as UTF-16"),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_a_refused_file_fails_the_staging_asset_and_changes_nothing(tmp_path, exports_dir, case):
    database = tmp_path / "w.duckdb"
    write_csv(exports_dir / "orders" / "a.csv", [good_order(1)])
    with duckdb.connect(str(database)) as con:
        ingest_source(con, exports_dir, "orders", now=NOW)
    name, content, words = HOSTILE_FILES[case]
    write_text(exports_dir / "orders" / name, content)

    result = materialize_staging(exports_dir, database)

    assert not result.success
    assert words in failure_message(result)
    assert "Consider" not in failure_message(result)
    con = duckdb.connect(str(database), read_only=True)
    try:
        assert reconcile(con, "orders") == (1, 1, 1, 0, 0)
    finally:
        con.close()


def test_quarantined_hostile_rows_pass_the_reconciliation_check_of_the_asset(tmp_path, exports_dir):
    database = tmp_path / "w.duckdb"
    lines = order_lines(good_order(1), good_order(2) | {"ordered_at": "2099-01-01"})
    write_text(exports_dir / "orders" / "a.csv", lines + "o3,c1,c1@x.io,2024-01-02,10.00\n")

    result = materialize_staging(exports_dir, database)

    assert result.success
    check = result.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["difference"].value == 0
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["quarantine_by_reason"].value == {"in_future": 1, "wrong_field_count": 1}
    con = duckdb.connect(str(database), read_only=True)
    try:
        assert staged_ids(con) == ["o1"]
        raw = json.loads(
            con.execute(
                "SELECT raw_values FROM staging.quarantine WHERE reason = 'wrong_field_count'"
            ).fetchone()[0]
        )
        assert raw["order_id"] == "o3" and raw["status"] is None
    finally:
        con.close()


# ----------------------------------------------------------------------------------------------
# 6. A changed file that drops a key


def test_a_duplicate_is_staged_when_the_changed_file_with_the_first_occurrence_drops_it(
    warehouse, exports_dir
):
    write_csv(exports_dir / "orders" / "day1.csv", [good_order(1), good_order(2)])
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    write_csv(exports_dir / "orders" / "day2.csv", [good_order(2, "c2"), good_order(3)])
    write_csv(exports_dir / "orders" / "day3.csv", [good_order(2, "c3")])
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert [q[:2] for q in quarantine(warehouse)] == [
        ("orders/day2.csv", 1),
        ("orders/day3.csv", 1),
    ]

    write_csv(exports_dir / "orders" / "day1.csv", [good_order(1)])  # o2 is gone from day1
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)

    assert report.files_replaced == ["orders/day1.csv"]
    assert report.duplicates_restaged == {"orders/day2.csv": 1}
    rows = warehouse.execute(
        "SELECT order_id, customer_id, source_file FROM staging.orders ORDER BY order_id"
    ).fetchall()
    assert rows == [
        ("o1", "c1", "orders/day1.csv"),
        ("o2", "c2", "orders/day2.csv"),  # the first remaining occurrence, as it was exported
        ("o3", "c1", "orders/day2.csv"),
    ]
    assert [q[:4] for q in quarantine(warehouse)] == [
        ("orders/day3.csv", 1, "order_id", "duplicate_key")
    ]
    # day3's row differed from day1's in its customer; the row staged now is day2's, from
    # which it differs too: compared with the row staged now, not the one gone.
    (detail,) = [q[4] for q in quarantine(warehouse)]
    assert (
        detail
        == "already staged from an earlier file, other values in customer_id, email: not applied"
    )
    assert reconcile(warehouse, "orders") == (3, 4, 3, 1, 0)
    files = warehouse.execute(
        "SELECT source_file, rows_read, rows_staged, rows_quarantined FROM staging.ingested_files "
        "ORDER BY 1"
    ).fetchall()
    assert files == [
        ("orders/day1.csv", 1, 1, 0),
        ("orders/day2.csv", 2, 2, 0),
        ("orders/day3.csv", 1, 0, 1),
    ]
    from engagement_box.staging.ingestion import orphaned_duplicates

    assert orphaned_duplicates(warehouse, "orders") == 0


def test_duplicates_are_compared_again_when_the_file_of_the_staged_row_is_corrected(
    warehouse, exports_dir
):
    """b.csv repeated a.csv's o1 exactly ("the same values"); a.csv was then corrected (99.00,
    cancelled) and read again, and b.csv's row still said "the same values": a real conflict
    read as a harmless re-send. The other way round, a correction that made the two equal
    left "other values"."""
    write_csv(exports_dir / "orders" / "a.csv", [good_order(1), good_order(3)])
    write_csv(exports_dir / "orders" / "b.csv", [good_order(1), good_order(2)])
    write_csv(exports_dir / "orders" / "c.csv", [{**good_order(3), "net_amount": "12.00"}])
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    details = [q[4] for q in quarantine(warehouse)]
    assert details == [
        "repeated within this ingest, the same values",
        "repeated within this ingest, other values in net_amount: not applied",
    ]

    corrected = {**good_order(1), "net_amount": "99.00", "status": "cancelled"}
    write_csv(
        exports_dir / "orders" / "a.csv", [corrected, {**good_order(3), "net_amount": "12.00"}]
    )
    report = ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert report.files_replaced == ["orders/a.csv"]
    assert [(q[0], q[4]) for q in quarantine(warehouse)] == [
        (
            "orders/b.csv",
            "repeated within this ingest, other values in net_amount, status: not applied",
        ),
        ("orders/c.csv", "repeated within this ingest, the same values"),
    ]
    assert_reconciles(warehouse)


def test_a_duplicate_left_after_a_restage_is_compared_with_the_row_staged_now(
    warehouse, exports_dir
):
    """A duplicate that repeated the row staged kept saying "the same values" after that row
    left and another duplicate (a return) was staged in its place."""
    write_csv(exports_dir / "orders" / "a.csv", [good_order(1), good_order(2)])
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    returned = {**good_order(2), "status": "returned"}
    write_csv(exports_dir / "orders" / "b.csv", [returned])
    write_csv(exports_dir / "orders" / "c.csv", [good_order(2)])
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert [(q[0], q[4]) for q in quarantine(warehouse)] == [
        (
            "orders/b.csv",
            "already staged from an earlier file, other values in status: not applied",
        ),
        ("orders/c.csv", "already staged from an earlier file, the same values"),
    ]
    # As if a version was published: the analysts' file holds these details, masked.
    from engagement_box.governance import readers

    warehouse.execute("CREATE SCHEMA IF NOT EXISTS marts")
    readers._record_quarantine_state(warehouse, f"{readers.QUARANTINE_MASKING}|2|0", "2|0")
    write_csv(exports_dir / "orders" / "a.csv", [good_order(1)])  # o2 leaves a.csv: b's is staged
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    # c's detail changed: copied by its keys, the next file would keep the one it had
    assert readers._recorded_quarantine(warehouse) == (None, None)
    assert warehouse.execute(
        "SELECT status FROM staging.orders WHERE order_id = 'o2'"
    ).fetchall() == [("returned",)]
    assert [(q[0], q[4]) for q in quarantine(warehouse)] == [
        (
            "orders/c.csv",
            "already staged from an earlier file, other values in status: not applied",
        ),
    ]


def test_erasing_the_person_whose_row_held_a_repeated_key_stages_the_other_persons_row(
    warehouse, exports_dir
):
    """Another person's row repeating a key of the erased person's staged row (a conflicting
    export) stayed quarantined with its key staged nowhere: every later run failed its
    reconciliation check ("duplicate_key rows without their staged key"). It is staged in the
    deleted row's place, as when a changed file drops a key."""
    from engagement_box.governance import erasure
    from engagement_box.staging.ingestion import orphaned_duplicates

    write_csv(exports_dir / "orders" / "a.csv", [good_order(1), good_order(2, "c2")])
    write_csv(exports_dir / "orders" / "b.csv", [good_order(1, "c5")])
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    report = erasure.erase(warehouse, customer_id="c1", now=NOW)
    assert report.duplicates_restaged == {"orders/b.csv": 1}
    assert warehouse.execute(
        "SELECT order_id, customer_id, source_file FROM staging.orders ORDER BY order_id"
    ).fetchall() == [("o1", "c5", "orders/b.csv"), ("o2", "c2", "orders/a.csv")]
    assert quarantine(warehouse) == []
    assert orphaned_duplicates(warehouse, "orders") == 0
    assert reconcile(warehouse, "orders").holds


def test_the_asset_check_holds_after_a_changed_file_drops_a_key(tmp_path, exports_dir):
    database = tmp_path / "w.duckdb"
    write_csv(exports_dir / "orders" / "day1.csv", [good_order(1), good_order(2)])
    write_csv(exports_dir / "orders" / "day2.csv", [good_order(2, "c2")])
    assert materialize_staging(exports_dir, database).success
    write_csv(exports_dir / "orders" / "day1.csv", [good_order(1)])

    result = materialize_staging(exports_dir, database)

    check = result.get_asset_check_evaluations()[0]
    assert check.passed
    assert check.metadata["duplicates_without_staged_key"].value == 0
    assert check.metadata["rows_quarantined"].value == 0
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["duplicates_restaged"].value == {"orders/day2.csv": 1}


# ----------------------------------------------------------------------------------------------
# 4. Money up to the cap, and 7. dated FX rates


def fx_rows(*rows: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"date": d, "currency": c, "rate": r} for d, c, r in rows]


def money_order(i: int, amount: str, currency: str, day: str, customer: str = "c1") -> dict:
    return good_order(i, customer) | {
        "net_amount": amount,
        "currency": currency,
        "ordered_at": f"{day} 10:00:00",
    }


def test_amounts_at_the_cap_times_the_largest_rate_flow_through_the_summaries(
    warehouse, exports_dir
):
    from engagement_box.value.summary import calibration_holdout, customer_summary

    write_csv(
        exports_dir / "orders" / "a.csv",
        [
            money_order(1, "1000000000.00", "EUR", "2024-01-05"),
            money_order(2, "1000000000.00", "GBP", "2024-02-05"),
            money_order(3, "1000000000.00", "USD", "2024-03-05"),
            money_order(4, "1000000000.01", "USD", "2024-03-06"),  # over the cap
        ],
    )
    write_csv(exports_dir / "fx_rates" / "r.csv", fx_rows(("2024-01-01", "EUR", "1000000")))
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    ingest_source(warehouse, exports_dir, "fx_rates", now=NOW)
    assert [q[1:4] for q in quarantine(warehouse)] == [(4, "net_amount", "out_of_range")]

    summary = customer_summary(
        warehouse, dt.date(2024, 12, 31), currency="USD", fx_rates={"GBP": 1e6}
    ).row(0, named=True)
    assert summary["order_count"] == 3
    assert summary["total_spend"] == 2 * 10**15 + 10**9  # exact, no overflow
    assert summary["monetary_value"] == pytest.approx((10**15 + 10**9) / 2)
    holdout = calibration_holdout(
        warehouse,
        dt.date(2024, 1, 31),
        dt.date(2024, 12, 31),
        currency="USD",
        fx_rates={"GBP": 1e6},
    ).row(0, named=True)
    assert holdout["total_spend"] == 10**15 and holdout["holdout_spend"] == 10**15 + 10**9


def test_a_rate_over_the_cap_is_refused_in_the_export_and_in_the_setting(warehouse, exports_dir):
    from engagement_box.value.summary import fx_parameters

    write_csv(
        exports_dir / "fx_rates" / "r.csv",
        fx_rows(
            ("2024-01-01", "eur", "1.1"),
            ("2024-01-01", "JPY", "2000000"),
            ("2024-01-01", "GBP", "0"),
        ),
    )
    ingest_source(warehouse, exports_dir, "fx_rates", now=NOW)
    assert staged_ids(warehouse, "fx_rates", "currency") == ["EUR"]
    assert [q[1:4] for q in quarantine(warehouse)] == [
        (2, "rate", "out_of_range"),
        (3, "rate", "out_of_range"),
    ]
    with pytest.raises(ValueError, match="the rate of JPY is 2000000.0; a rate must be a number"):
        fx_parameters("USD", {"JPY": 2e6})
    # and a rate of 0, which would value those orders at nothing (a mutation review)
    with pytest.raises(ValueError, match="the rate of GBP is 0"):
        fx_parameters("USD", {"GBP": 0})


def test_a_repeated_day_and_currency_is_a_duplicate_key(warehouse, exports_dir):
    write_csv(
        exports_dir / "fx_rates" / "r.csv",
        fx_rows(
            ("2024-01-01", "EUR", "1.1"), ("2024-01-01", "GBP", "1.3"), ("2024-01-01", "eur", "1.2")
        ),
    )
    ingest_source(warehouse, exports_dir, "fx_rates", now=NOW)
    write_csv(exports_dir / "fx_rates" / "s.csv", fx_rows(("2024-01-01", "GBP", "1.4")))
    ingest_source(warehouse, exports_dir, "fx_rates", now=NOW)
    rates = warehouse.execute("SELECT currency, rate FROM staging.fx_rates ORDER BY 1").fetchall()
    assert rates == [("EUR", 1.1), ("GBP", 1.3)]
    assert [q[:4] for q in quarantine(warehouse)] == [
        ("fx_rates/r.csv", 3, "date", "duplicate_key"),
        ("fx_rates/s.csv", 1, "date", "duplicate_key"),
    ]
    assert_reconciles(warehouse, "fx_rates")


def test_each_order_is_converted_at_the_latest_rate_on_or_before_its_day(warehouse, exports_dir):
    from engagement_box.value.summary import customer_summary, orders_left_out

    write_csv(
        exports_dir / "orders" / "a.csv",
        [
            money_order(1, "100.00", "EUR", "2023-12-15"),  # before any dated rate: the setting
            money_order(2, "100.00", "EUR", "2024-01-01"),  # on the rate's day
            money_order(3, "100.00", "EUR", "2024-01-31"),
            money_order(4, "100.00", "EUR", "2024-02-10"),
            money_order(5, "100.00", "USD", "2024-02-11"),  # the reporting currency: 1
            money_order(6, "100.00", "JPY", "2024-02-12"),  # no rate at all: left out
        ],
    )
    write_csv(
        exports_dir / "fx_rates" / "r.csv",
        fx_rows(
            ("2024-01-01", "EUR", "1.1"),
            ("2024-02-01", "EUR", "1.2"),
            ("2024-01-01", "USD", "1"),  # the reporting currency's own rate: 1, as always
        ),
    )
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    ingest_source(warehouse, exports_dir, "fx_rates", now=NOW)

    as_of = dt.date(2024, 12, 31)
    money = {"currency": "USD", "fx_rates": {"EUR": 5.0}}
    summary = customer_summary(warehouse, as_of, **money).row(0, named=True)
    assert summary["order_count"] == 5
    assert summary["total_spend"] == 500 + 110 + 110 + 120 + 100
    assert orders_left_out(warehouse, as_of, **money) == ({"JPY": 1}, 6)
    # Without the setting, the December order has no rate either.
    no_setting = {"currency": "USD", "fx_rates": {}}
    assert orders_left_out(warehouse, as_of, **no_setting) == ({"EUR": 1, "JPY": 1}, 6)
    assert customer_summary(warehouse, as_of, **no_setting)["total_spend"].to_list() == [440]


# ----------------------------------------------------------------------------------------------
# Through the assets: the summary's check on orders left out, and the as-of


def materialize_summary(exports: Path, database: Path, settings=None, month="2024-12-01"):
    from assets.identity import identity_assets
    from assets.value import buyer_days, customer_summary
    from pipelines.resources import EngagementConfig, ModelSettings

    # The summary groups orders by the identity-resolved customer: the links come first, then
    # the orders per customer and day it reads.
    return dg.materialize(
        [*staged_assets, *identity_assets, buyer_days, customer_summary],
        resources={
            "warehouse": working_warehouse(database),
            "exports": ExportsResource(data_dir=str(exports)),
            "model_settings": settings or ModelSettings(),
            "engagement_config": EngagementConfig(),
        },
        partition_key=month,
        raise_on_error=False,
    )


def summary_check(result):
    return next(
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "orders_left_out_within_limit"
    )


def test_a_shop_selling_in_one_other_currency_is_told_to_report_in_it():
    """An all-EUR shop without fx_rates: 989 of 989 orders left out, and the advice named only
    rates to add, not the setting that needs none (a review)."""
    from assets.value import left_out_check

    alone = left_out_check({"EUR": 989}, 989, "USD")
    assert not alone.passed and "or report in EUR (ENGAGEMENT_CURRENCY=EUR: every" in (
        alone.description
    )
    mixed = left_out_check({"EUR": 989}, 1000, "USD")
    assert "ENGAGEMENT_CURRENCY" not in mixed.description
    two = left_out_check({"EUR": 500, "CHF": 500}, 1000, "USD")
    assert "ENGAGEMENT_CURRENCY" not in two.description
    assert "re-execution from this failure" in alone.description


def test_orders_left_out_within_the_limit_are_not_said_a_failure():
    """2 of 12,215 orders in a currency without a rate: the check passes and the run publishes,
    yet its line told the user to re-execute "from this failure" (a review)."""
    from assets.value import left_out_check

    within = left_out_check({"JPY": 1, "XYZ": 1}, 12_215, "USD")
    assert within.passed
    assert within.description == (
        "2 of 12215 completed orders left out: no FX rate into USD (JPY 1, XYZ 1); add them to "
        "the fx_rates export or ENGAGEMENT_FX_RATES, then run again (the next scheduled run "
        "takes them in)"
    ), within.description


def test_orders_left_out_for_want_of_a_rate_fail_the_blocking_check(tmp_path, exports_dir):
    rows = [money_order(i, "10.00", "USD", f"2024-0{1 + i % 9}-10", f"c{i % 7}") for i in range(90)]
    rows += [money_order(100 + i, "10.00", "CHF", "2024-03-03", "c1") for i in range(2)]
    write_csv(exports_dir / "orders" / "a.csv", rows)
    write_csv(exports_dir / "fx_rates" / "r.csv", fx_rows(("2024-01-01", "EUR", "1.1")))

    result = materialize_summary(exports_dir, tmp_path / "w.duckdb")

    check = summary_check(result)
    assert not check.passed
    assert check.metadata["orders_left_out"].value == 2
    assert check.metadata["completed_orders"].value == 92
    assert check.description.startswith("2 of 92 completed orders left out: no FX rate into USD")
    assert "CHF 2" in check.description

    write_csv(exports_dir / "fx_rates" / "r.csv", fx_rows(("2024-01-01", "CHF", "1.1")))
    result = materialize_summary(exports_dir, tmp_path / "w.duckdb")
    check = summary_check(result)
    assert check.passed and check.metadata["orders_left_out"].value == 0


def test_a_buyer_whose_orders_all_lack_a_rate_is_no_prospect(tmp_path, exports_dir):
    """A profile whose completed orders are all in PLN, with no PLN rate, was published as a
    Prospect (0 orders, the first-purchase play) and put in the prospect audience, while the
    run said only that 2 orders were left out (a multi-currency review). It gets no RFM row now
    (its segment is NULL in the customer mart), and the check and the step say how many such
    customers there are, and how many were valued on their other orders only (the CHF buyer's
    first order is before CHF's first rate)."""
    from assets.identity import identity_assets
    from assets.value import buyer_days, customer_rfm, customer_summary
    from pipelines.resources import EngagementConfig, ModelSettings

    profile = {
        "social_handles": "", "signup_date": "2023-01-01", "loyalty_member": "false",
        "marketing_consent": "true", "country": "PL",
    }  # fmt: skip
    write_csv(
        exports_dir / "customers" / "c.csv",
        [profile | {"customer_id": c, "email": f"{c}@x.io"} for c in ("pln", "chf", "never")],
    )
    rows = [
        money_order(i, "10.00", "USD", f"2024-0{1 + i % 9}-10", f"c{i % 7}") for i in range(400)
    ]
    rows += [
        money_order(900, "50.00", "PLN", "2024-06-10", "pln"),
        money_order(901, "70.00", "PLN", "2024-07-01", "pln"),
        money_order(902, "30.00", "CHF", "2024-02-01", "chf"),  # before CHF's first rate
        money_order(903, "30.00", "CHF", "2024-04-01", "chf"),
        money_order(904, "30.00", "CHF", "2024-05-01", "chf"),
    ]
    write_csv(exports_dir / "orders" / "a.csv", rows)
    write_csv(exports_dir / "fx_rates" / "r.csv", fx_rows(("2024-03-01", "CHF", "1.1")))
    database = tmp_path / "w.duckdb"

    result = dg.materialize(
        [*staged_assets, *identity_assets, buyer_days, customer_summary, customer_rfm],
        resources={
            "warehouse": working_warehouse(database),
            "exports": ExportsResource(data_dir=str(exports_dir)),
            "model_settings": ModelSettings(),
            "engagement_config": EngagementConfig(),
        },
        partition_key="2024-12-01",
    )

    check = summary_check(result)
    assert check.passed and check.metadata["orders_left_out"].value == 3
    assert check.metadata["customers_left_out"].value == 1
    assert check.metadata["customers_partly_left_out"].value == 1
    assert "1 customer(s) with no other completed order get no RFM segment (not Prospect" in (
        check.description
    )
    # a buyer without a profile has no row at all, which the words say (a finance review read
    # "get no RFM segment" as a row with none)
    assert "without a customer profile has no row in the marts at all" in check.description
    with duckdb.connect(str(database), read_only=True) as con:
        rfm_rows = dict(
            con.execute(
                "SELECT customer_id, segment FROM work.customer_rfm "
                "WHERE customer_id IN ('pln', 'chf', 'never')"
            ).fetchall()
        )
    assert rfm_rows.keys() == {"chf", "never"} and rfm_rows["never"] == "Prospect"
    assert rfm_rows["chf"] != "Prospect"
    step = result.asset_materializations_for_node("work__customer_rfm")[0].metadata
    assert step["customers_left_out"].value == 1
    assert step["segments"].value["Prospect"] == 1


def test_a_future_dated_order_does_not_move_the_as_of(tmp_path, exports_dir):
    rows = [money_order(i, "10.00", "USD", f"2024-0{1 + i % 9}-10", f"c{i % 7}") for i in range(40)]
    write_csv(exports_dir / "orders" / "a.csv", rows)
    database = tmp_path / "w.duckdb"
    before = materialize_summary(exports_dir, database, month="2024-09-01")
    write_csv(exports_dir / "orders" / "b.csv", [money_order(99, "10.00", "USD", "2099-01-01")])

    after = materialize_summary(exports_dir, database, month="2024-09-01")

    def as_of(result) -> str:
        return next(
            e.materialization.metadata["as_of"].value
            for e in result.get_asset_materialization_events()
            if e.asset_key.path[-1] == "customer_summary"
        )

    assert after.success and as_of(after) == as_of(before) == "2024-09-10"
    con = duckdb.connect(str(database), read_only=True)
    try:
        assert [q[3] for q in quarantine(con)] == ["in_future"]
        assert_reconciles(con)
    finally:
        con.close()


def test_the_as_of_never_passes_the_run_date(warehouse):
    from assets.value import resolve_window
    from pipelines.resources import ModelSettings

    warehouse.execute(
        "CREATE SCHEMA staging; CREATE TABLE staging.orders (ordered_at TIMESTAMP, status VARCHAR)"
    )
    warehouse.execute(
        "INSERT INTO staging.orders VALUES ('2026-02-10', 'completed'), ('2099-01-01', 'completed')"
    )
    run_date = dt.date(2026, 3, 1)
    assert resolve_window(warehouse, ModelSettings(), None, run_date)["as_of"] == run_date
    assert resolve_window(warehouse, ModelSettings(), "2026-03-01", run_date)["as_of"] == run_date
    february = resolve_window(warehouse, ModelSettings(), "2026-02-01", run_date)
    assert february["as_of"] == dt.date(2026, 2, 28)
    with pytest.raises(dg.Failure, match="ENGAGEMENT_AS_OF 2026-06-30 is after the run's date"):
        resolve_window(warehouse, ModelSettings(as_of="2026-06-30"), None, run_date)


def test_a_calibration_end_not_before_the_last_order_names_its_setting(warehouse):
    """The ticks compare a pinned calibration end with the run's day; the as-of, known once the
    orders are staged, can be earlier (the last completed order). The run's failure then named
    no setting ("calibration end 2026-09-15 must be before the as-of date 2026-08-10", a
    review): it names the variable and the order that set the as-of."""
    from assets.value import resolve_window
    from pipelines.resources import ModelSettings

    warehouse.execute(
        "CREATE SCHEMA staging; CREATE TABLE staging.orders (ordered_at TIMESTAMP, status VARCHAR)"
    )
    warehouse.execute("INSERT INTO staging.orders VALUES ('2026-08-10 09:00', 'completed')")
    pinned = ModelSettings(calibration_end="2026-09-15")
    with pytest.raises(
        dg.Failure,
        match=r"^ENGAGEMENT_CALIBRATION_END=2026-09-15 must be before the as-of date 2026-08-10 "
        r"\(the last completed order is of 2026-08-10\): set an earlier date",
    ):
        resolve_window(warehouse, pinned, "2026-12-01", dt.date(2026, 12, 6))


# ----------------------------------------------------------------------------------------------
# Property: any mix of hostile rows in a CSV file loses nothing


def hostile_line(i: int, kind: str) -> str:
    values = list(good_order(i).values())
    if kind == "short":
        values = values[: 3 + i % 5]  # cut after 3..7 of the 8 fields
    elif kind == "future":
        values[3] = "2099-12-31 10:00:00"
    elif kind == "quoted":
        values[1] = f'"c{i}, with a comma"'
    elif kind == "empty_optional":
        values[2] = ""
    elif kind == "blank":
        return ""
    return ",".join(values)


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(
        st.sampled_from(["good", "short", "future", "quoted", "empty_optional", "blank"]),
        max_size=30,
    )
)
def test_any_mix_of_hostile_rows_is_staged_or_quarantined(tmp_path_factory, kinds):
    root: Path = tmp_path_factory.mktemp("hostile")
    lines = [",".join(ORDER_HEADER), *(hostile_line(i, k) for i, k in enumerate(kinds))]
    write_text(root / "orders" / "f.csv", "\n".join(lines) + "\n")
    con = duckdb.connect(str(root / "w.duckdb"))
    try:
        report = ingest_source(con, root, "orders", now=NOW)
        rows = len(kinds)  # a blank line is a row, even the last one
        files, read, staged, quarantined, erased = reconcile(con, "orders")
        assert read == rows == staged + quarantined and erased == 0
        assert (
            report.rows_staged
            == staged
            == sum(k in ("good", "quoted", "empty_optional") for k in kinds[:rows])
        )
        rows_seen = con.execute(
            "SELECT source_row FROM staging.orders UNION ALL "
            "SELECT source_row FROM staging.quarantine ORDER BY 1"
        ).fetchall()
        assert [r[0] for r in rows_seen] == list(range(1, rows + 1))
        reasons = dict(
            con.execute("SELECT source_row, reason FROM staging.quarantine ORDER BY 1").fetchall()
        )
        for row, kind in enumerate(kinds[:rows], start=1):
            if kind in ("short", "blank"):
                assert reasons[row] == "wrong_field_count"
            elif kind == "future":
                assert reasons[row] == "in_future"
    finally:
        con.close()


def test_a_placeholder_email_warns_and_its_guest_orders_stay_unresolved(tmp_path, exports_dir):
    """Six profiles on a till's noemail@ address: the identity step's check warns (the run goes
    on), names no address, and the guest order on that address counts for nobody; the family's
    two profiles on one address are one customer with both orders."""
    profile = {
        "social_handles": "", "signup_date": "2023-01-01", "loyalty_member": "false",
        "marketing_consent": "true", "country": "DE",
    }  # fmt: skip
    customers = [profile | {"customer_id": f"t{i}", "email": "noemail@shop.com"} for i in range(6)]
    customers += [
        profile | {"customer_id": "m1", "email": "home@example.com"},
        profile | {"customer_id": "m2", "email": "Home@Example.com", "signup_date": "2023-02-01"},
    ]
    write_csv(exports_dir / "customers" / "c.csv", customers)
    orders = [
        money_order(1, "10.00", "USD", "2024-03-01", "t1"),
        money_order(2, "10.00", "USD", "2024-03-02", "m2"),
        money_order(3, "10.00", "USD", "2024-03-03", "m1"),
        money_order(4, "10.00", "USD", "2024-03-04", "") | {"email": "noemail@shop.com"},
    ]
    write_csv(exports_dir / "orders" / "a.csv", orders)
    write_csv(exports_dir / "fx_rates" / "r.csv", fx_rows(("2024-01-01", "USD", "1")))
    database = tmp_path / "w.duckdb"

    result = materialize_summary(exports_dir, database)

    assert result.success  # a warning, not a failure
    check = next(
        c for c in result.get_asset_check_evaluations() if c.check_name == "no_placeholder_keys"
    )
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith(
        "1 email(s) carried by more than 5 profiles (at most 6 staged on one; profiles erased "
        "from a key still count on it)"
    )
    assert "noemail" not in check.description  # an address is personal data: never in the log
    with duckdb.connect(str(database), read_only=True) as con:
        buyers = dict(
            con.execute(
                "select customer_id, order_count from work.customer_summary order by 1"
            ).fetchall()
        )
    assert buyers == {"m1": 2, "t1": 1}  # order 4 is nobody's


def test_a_flag_written_as_floats_is_read_as_a_boolean(warehouse, exports_dir):
    """pandas writes a 0/1 column with a gap as floats (`1.0`, `0.0`, empty), in a CSV and as a
    Parquet float column: every row of such files was quarantined as unparseable_boolean (CSV)
    or the file was refused (Parquet). 1.0 and 0.0 are the flags; 0.5 is not one; NaN is a gap."""
    (exports_dir / "reviews").mkdir(exist_ok=True)
    base = {"customer_id": ["c1"] * 4, "product_id": ["P1"] * 4, "rating": [5] * 4,
            "helpful_votes": [0] * 4, "created_at": ["2024-01-01"] * 4}  # fmt: skip
    pl.DataFrame(
        {"review_id": ["v1", "v2", "v3", "v4"], **base,
         "verified_purchase": ["1.0", "0.0", "0.5", "1.00"]}
    ).write_csv(exports_dir / "reviews" / "a.csv")  # fmt: skip
    pl.DataFrame(
        {"review_id": ["w1", "w2", "w3", "w4"], **base,
         "verified_purchase": [1.0, 0.0, 0.5, float("nan")]}
    ).write_parquet(exports_dir / "reviews" / "b.parquet")  # fmt: skip
    ingest_source(warehouse, exports_dir, "reviews", now=NOW)
    staged = warehouse.execute(
        "SELECT review_id, verified_purchase FROM staging.reviews ORDER BY review_id"
    ).fetchall()
    assert staged == [("v1", True), ("v2", False), ("v4", True), ("w1", True), ("w2", False)]
    reasons = sorted((q[0], q[1], q[3]) for q in quarantine(warehouse))
    assert reasons == [
        ("reviews/a.csv", 3, "unparseable_boolean"),
        ("reviews/b.parquet", 3, "unparseable_boolean"),
        ("reviews/b.parquet", 4, "missing_required_value"),
    ]


def test_every_file_refused_for_its_rows_is_named_not_only_the_first(warehouse, exports_dir):
    """Two files each with a row of more fields than its header: the run named only the first,
    so the sender fixed it, ran again, and only then learnt of the second. Both are named, each
    with its line, and nothing is staged (the good file before them neither)."""
    write_text(
        exports_dir / "referrals" / "a.csv", referral_text("r1,c1,b@x.io,,2024-01-01,,5.00,25.00,")
    )
    for name, number in (("b.csv", 2), ("c.csv", 3)):
        rows = [f"r{number}{i},c1,b@x.io,,2024-01-01,,5.00,25.00," for i in range(number - 1)]
        write_text(
            exports_dir / "referrals" / name,
            referral_text(*rows, f"r{number}9,c1,b@x.io,,2024-01-01,,5.00,25.00,,extra"),
        )
    with pytest.raises(IngestError) as refused:
        ingest_source(warehouse, exports_dir, "referrals", now=NOW)
    message = str(refused.value)
    assert message.startswith("2 referrals files cannot be taken in; nothing was staged: ")
    assert "referrals/b.csv:" in message and "referrals/c.csv:" in message, message
    assert "line 3" in message and "line 4" in message, message
    assert "a.csv" not in message
    assert staged_ids(warehouse, "referrals", "referral_id") == []


def test_a_row_with_a_field_more_than_the_header_is_refused_whatever_the_columns(
    warehouse, exports_dir
):
    """An unquoted comma in a column the contract ignores, before the contract's last one:
    reading only the contract's columns (a memory saving tried and reverted) staged the row
    shifted by one field, order `c2` of a customer `Ann`. The file is refused, naming the line."""
    write_text(
        exports_dir / "orders" / "a.csv",
        "ordered_at,net_amount,currency,status,channel,email,gift_note,customer_id,order_id\n"
        "2024-01-01T10:00:00,11.50,USD,completed,web,c1@example.com,none,c1,o1\n"
        "2024-01-02T10:00:00,12.50,USD,completed,web,c2@example.com,Happy birthday, Ann,c2,o2\n",
    )
    with pytest.raises(IngestError, match=r"line 3 has 10 fields but the header has 9"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert staged_ids(warehouse) == []


def test_a_pasted_part_after_a_value_with_a_lone_cr_is_refused(warehouse, exports_dir):
    """A lone CR inside an earlier value (kept in it) must not shift the rows a repeated
    header is looked for in: reading lines as Python's text files do (a CR ends one) missed
    the pasted part and staged its order and customer ids swapped."""
    header = ",".join(["note", *ORDER_HEADER])
    swapped = ",".join(["note", "customer_id", "order_id", *ORDER_HEADER[2:]])
    write_text(
        exports_dir / "orders" / "a.csv",
        f"{header}\n"
        '"call\rback",o1,c1,c1@example.com,2024-01-02T10:00:00,11.50,USD,completed,web\n'
        "x,o2,c1,c1@example.com,2024-01-03T10:00:00,12.50,USD,completed,web\n"
        f"{swapped}\n"
        "y,c3,o3,c3@example.com,2024-01-04T10:00:00,13.50,USD,completed,web\n",
    )
    with pytest.raises(IngestError, match=r"row 3 repeats the header"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)


def test_an_email_in_two_unicode_forms_is_one_person_and_one_erasure_finds_both(
    warehouse, exports_dir
):
    """`José` as macOS writes it (`e` and a combining accent) and as a form types it (`é`):
    the same text to a reader, two profiles, two people, the consenting one kept in the
    marketing audiences, and an erasure typed one way left the other (a review). Ids, emails
    and handles are staged composed (NFC); an erasure composes its request and what it reads."""
    from engagement_box.governance import erasure
    from engagement_box.identity.links import build_identity_links, merge_summary

    decomposed, composed = "jose\u0301.garcia@example.com", "jos\u00e9.garcia@example.com"
    profile = {
        "social_handles": "",
        "signup_date": "2026-02-01",
        "loyalty_member": "false",
        "country": "ES",
    }
    write_csv(
        exports_dir / "customers" / "c.csv",
        [
            profile | {"customer_id": "C1", "email": decomposed, "marketing_consent": "true"},
            profile | {"customer_id": "C2", "email": composed, "marketing_consent": "false"},
        ],
    )
    write_csv(
        exports_dir / "orders" / "o.csv",
        [good_order(1, customer="G1") | {"email": decomposed.upper()}],
    )
    for source in SOURCES:
        (exports_dir / source).mkdir(exist_ok=True)
        ingest_source(warehouse, exports_dir, source, now=NOW)
    emails = warehouse.execute("SELECT DISTINCT email FROM staging.customers").fetchall()
    assert emails == [(composed,)]
    build_identity_links(warehouse)
    assert merge_summary(warehouse)["people"] == 1
    person = warehouse.execute(
        "SELECT marketing_consent FROM intermediate.resolved_customers"
    ).fetchall()
    assert person == [(False,)]  # the most restrictive answer of the two profiles

    report = erasure.erase(warehouse, email=f" {decomposed} ")
    assert report.erased_rows == {"customers": 2, "orders": 1}
    # a later export in the other form is kept out too
    write_csv(
        exports_dir / "customers" / "again.csv",
        [profile | {"customer_id": "C3", "email": composed, "marketing_consent": "true"}],
    )
    again = ingest_source(warehouse, exports_dir, "customers", now=NOW)
    assert (again.rows_staged, again.rows_erased) == (0, 1)


@pytest.mark.parametrize(
    ("last_line", "line_end", "said"),
    [
        # copied while still being written: cut mid-row, no line end after it
        ("r3,c1,e@x.io,,2024-01-01,,5.0", "", ["wrong_field_count"]),
        # cut inside its last value: every field there, the value not one (no line end)
        ("r3,c1,e@x.io,,2024-01-01,,5.00,25.00,ye", "", ["unparseable_boolean"]),
        # a whole file some tools write without a final line end: nothing to say
        ("r3,c1,e@x.io,,2024-01-01,,5.00,25.00,yes", "", []),
        # a short last row with its line end: a bad row, not a cut file
        ("r3,c1,e@x.io,,2024-01-01,,5.0", "\n", []),
    ],
)
def test_a_file_whose_last_line_is_cut_is_said_to_look_cut_short(
    warehouse, exports_dir, last_line, line_end, said
):
    """An export copied while still being written ends mid-row: its last row is quarantined like
    any bad row, and the report names the file as cut short, so the run's warning says to put
    the whole export in its place (an on-call review: only `wrong_field_count` was said)."""
    text = referral_text("r1,c1,b@x.io,,2024-01-01,,5.00,25.00,", "r2,c1,d@x.io,,2024-01-01,,5.0")
    write_text(exports_dir / "referrals" / "r.csv", text + last_line + line_end)

    report = ingest_source(warehouse, exports_dir, "referrals", now=NOW)

    assert report.cut_short == ({"referrals/r.csv": said} if said else {})
    assert assert_reconciles(warehouse, "referrals")[1] == 3  # every row read, the cut one too
    if said:
        message = cut_short_message("referrals/r.csv", said)
        assert message.startswith("referrals/r.csv looks cut short: its last line has no line end")
        assert "put the whole export in its place" in message


# ----------------------------------------------------------------------------------------------
# Content that costs a run its memory or its time (a security review)


def test_a_value_longer_than_a_kilobyte_is_quarantined_and_kept_cut(warehouse, exports_dir):
    """A 26 KB Parquet file (zstd) held a customer id of 400 million characters, which staged
    and took a run past 4 GiB two steps later. A value over MAX_VALUE_BYTES quarantines its row
    as `too_long`, whatever else it holds; the quarantine keeps the value's first kilobyte."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engagement_box.staging.validation import MAX_VALUE_BYTES

    rows = [good_order(1), good_order(2, customer="c" * 5_000), good_order(3)]
    rows[2]["email"] = "é" * 600 + "@example.com"  # 1,212 bytes, 612 characters
    write_csv(exports_dir / "orders" / "a.csv", rows)
    huge = {**good_order(4), "customer_id": "A" * 20_000_000}
    pq.write_table(
        pa.table({k: pa.array([v], pa.large_string()) for k, v in huge.items()}),
        exports_dir / "orders" / "b.parquet",
        compression="zstd",
    )
    assert (exports_dir / "orders" / "b.parquet").stat().st_size < 100_000
    ingest_source(warehouse, exports_dir, "orders", now=NOW)

    assert staged_ids(warehouse) == ["o1"]
    assert quarantine(warehouse) == [
        ("orders/a.csv", 2, "customer_id", "too_long", "5,000 bytes, more than 1,000"),
        ("orders/a.csv", 3, "email", "too_long", "1,212 bytes, more than 1,000"),
        ("orders/b.parquet", 1, "customer_id", "too_long", "20,000,000 bytes, more than 1,000"),
    ]
    kept = warehouse.execute(
        "SELECT json_extract_string(raw_values, '$.customer_id') FROM staging.quarantine "
        "WHERE source_file = 'orders/b.parquet'"
    ).fetchone()[0]
    assert kept == "A" * MAX_VALUE_BYTES
    assert assert_reconciles(warehouse)[1:] == (4, 1, 3, 0)


def test_a_file_wider_than_any_export_is_refused_before_its_rows_are_read(warehouse, exports_dir):
    """A header of a million names (14 MB) held the run lock for hours: checking a header took
    time in the square of its width. A file of more than MAX_COLUMNS columns is refused, CSV
    or Parquet, and the staged tables are left as they were."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engagement_box.staging.reading import MAX_COLUMNS

    staged_first(warehouse, exports_dir)
    extra = [f"c{i}" for i in range(MAX_COLUMNS - len(ORDER_HEADER) + 1)]
    row = good_order(2)
    write_text(
        exports_dir / "orders" / "wide.csv",
        ",".join(ORDER_HEADER + extra) + "\n" + ",".join(list(row.values()) + ["x"] * len(extra)),
    )
    with pytest.raises(
        IngestError, match=r"orders/wide\.csv: 10,001 columns, more than the 10,000"
    ):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert_unchanged(warehouse)

    (exports_dir / "orders" / "wide.csv").unlink()
    table = pa.table(
        {name: [value] for name, value in {**row, **dict.fromkeys(extra, "x")}.items()}
    )
    pq.write_table(table, exports_dir / "orders" / "wide.parquet")
    with pytest.raises(IngestError, match=r"orders/wide\.parquet: 10,001 columns"):
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert_unchanged(warehouse)

    # At the limit, a wide export is read: the extra columns are ignored.
    (exports_dir / "orders" / "wide.parquet").unlink()
    write_text(
        exports_dir / "orders" / "wide.csv",
        ",".join(ORDER_HEADER + extra[:-1])
        + "\n"
        + ",".join(list(row.values()) + ["x"] * (len(extra) - 1)),
    )
    ingest_source(warehouse, exports_dir, "orders", now=NOW)
    assert staged_ids(warehouse) == ["o1", "o2"]


def test_a_file_name_with_a_control_character_is_refused_and_shown_escaped(warehouse, exports_dir):
    """A file named with a terminal's escape sequence retitled the operator's window and erased
    the `FAILED` line's start; one with a line break cut that line to the name's first part,
    hiding the reason. Such a name is refused (no export tool writes one), shown escaped."""
    staged_first(warehouse, exports_dir)
    write_csv(exports_dir / "orders" / "y\x1b]0;pwned\x07\x1b[2Kok.csv", [good_order(2)])
    write_csv(exports_dir / "orders" / "x\nreal.csv", [good_order(3)])
    with pytest.raises(IngestError) as refused:
        ingest_source(warehouse, exports_dir, "orders", now=NOW)
    message = str(refused.value)
    assert "orders/x\\nreal.csv: the file name holds a control character" in message, message
    assert "orders/y\\x1b]0;pwned\\x07\\x1b[2Kok.csv: the file name holds" in message, message
    assert "\x1b" not in message and "\x07" not in message
    assert_unchanged(warehouse)


def test_the_console_shows_control_characters_escaped():
    """Whatever a message quotes of an export (a key, a header), the CLI's console shows its
    control characters as escapes: a terminal acts on none of them."""
    import io

    from engagement_box.cli import _Console

    out = io.StringIO()
    console = _Console(out)
    text = "key \x1b]0;owned\x07\x1b[1A\x9b2K\tend\r\n"
    assert console.write(text) == len(text)  # what print() was given
    assert out.getvalue() == "key \\x1b]0;owned\\x07\\x1b[1A\\x9b2K\\tend\\r\n"
