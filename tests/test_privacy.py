"""No email or handle reaches Dagster's own storage (which erasure cannot reach); assets that
hold personal data say so, and every asset has an owner."""

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from engagement_box.governance import privacy
from engagement_box.governance.readers import default_working
from pipelines.definitions import defs


def test_previews_mask_personal_columns_and_keep_pseudonymous_ids():
    frame = pl.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "email": ["a@example.com", None],
            "referee_email": ["b@example.com", "c@example.com"],
            "actor_handle": ["@ann", "@bob"],
            "social_handles": ["@ann", "@bob"],
            "raw_values": ['{"email": "a@example.com"}', "{}"],
            "net_amount": [1.5, 2.5],
        }
    )
    out = privacy.masked(frame)
    assert out["customer_id"].to_list() == ["C1", "C2"]
    assert out["net_amount"].to_list() == [1.5, 2.5]
    assert out["email"].to_list() == [privacy.MASK, None]
    for column in ("referee_email", "actor_handle", "social_handles", "raw_values"):
        assert set(out[column].to_list()) == {privacy.MASK}, column


def test_a_preview_shows_what_an_export_wrote_and_renders_no_link_image_or_heading():
    """A customer id is whatever the export wrote: `![x](https://...)` and a line break then
    `# heading` and `[Reset your password](https://...)` reached the previews as markdown, and
    Dagster renders links and images there (a security review). Text is a code span (pipes and
    backticks kept), control characters escaped, a long value cut; numbers stay plain."""
    from assets.metadata import CELL_CHARS, markdown_table

    ids = [
        "![x](https://attacker.example/beacon.png)",
        "!\n# Pwned\n[Reset your password](https://attacker.example/login)",
        "a|b`c",
        "`",
        "x" * 500,
    ]
    table = markdown_table(pl.DataFrame({"customer_id": ids, "clv": [1.5, None, 2.0, 0.0, 3.0]}))
    lines = table.splitlines()
    assert len(lines) == 2 + len(ids)  # no value started a line of its own
    assert lines[2] == "| `![x](https://attacker.example/beacon.png)` | 1.5000 |"
    assert lines[3].startswith("| `!\\n# Pwned\\n[Reset your password](") and lines[3].endswith(
        ")` |  |"
    )
    assert lines[4] == "| ``a\\|b`c`` | 2.0000 |"
    assert lines[5] == "| `` ` `` | 0.0000 |"
    assert lines[6] == f"| `{'x' * (CELL_CHARS - 1)}…` | 3.0000 |"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ('C0009900, "JeffreyBrown1601@gmail.com, home",', 'C0009900, "J***@gmail.com, home",'),
        ("@cynthia_hernandez515;@miller.thomas424", "@c***;@m***"),
        ("C1,ann@example.com,@ann,2023-07-01", "C1,a***@example.com,@a***,2023-07-01"),
        # malformed addresses are masked too: they are still someone's
        ("jane@example,mary.smith@,@@jane", "j***@e***,m***@,@@j***"),
        (
            "could not parse `bob@x.org` as dtype `str`",
            "could not parse `b***@x.org` as dtype `str`",
        ),
        ('TV 55" LED, 2024-01-05 10:00:00, C0000001', 'TV 55" LED, 2024-01-05 10:00:00, C0000001'),
    ],
)
def test_free_text_is_masked_email_by_email_and_handle_by_handle(text, masked):
    assert privacy.masked_text(text) == masked


@pytest.mark.parametrize(
    "values",
    [
        {"customer_id": "C0000398", "email": "swilliams483@proton.me", "handles": "@bob;@x"},
        {"handles": '"@ann"', "email": "\tann@x.com", "note": "a\\b @c"},  # escaped in JSON
        {"handles": "@ann\u00a0@bob", "email": "bob@@jane", "text": "hi\u00a0@bob", "n": None},
        {"tv": 'TV 55" LED', "at": "2024-01-05 10:00:00", "amount": 12.5},
    ],
)
def test_a_quarantined_rows_json_is_masked_value_by_value_and_stays_json(values):
    """The published quarantine masked the JSON text with regular expressions: an escaped
    quote or a tab before a handle or an email left invalid JSON, and every later publish
    failed; Unicode spaces were read otherwise than the messages read them. Each value is now
    masked as the messages mask it, and the text stays JSON."""
    masked = json.loads(privacy.masked_json(json.dumps(values)))
    assert list(masked) == list(values)
    for key, value in values.items():
        if isinstance(value, str) and not privacy.is_personal(key):
            assert masked[key] == privacy.masked_text(value), key
    assert "@bob" not in json.dumps(masked) and "ann" not in json.dumps(masked)


def test_a_handle_written_without_its_at_is_masked_in_a_handle_field():
    """Social events name handles without their `@` (the contract allows it): 54 of them stood
    in clear text in the analysts' file, beside masked ones. A personal field is masked whole,
    entry by entry; the rule text a detail quotes stays readable."""
    raw = {"actor_handle": "chris_clark139", "target_handle": "@emily", "event_id": "E1"}
    assert json.loads(privacy.masked_json(json.dumps(raw))) == {
        "actor_handle": "c***",
        "target_handle": "@e***",
        "event_id": "E1",
    }
    assert privacy.masked_value("@ann;bob_x; ") == "@a***;b***; "
    rule = "str_matches('^[^@\\s]+@[^@\\s]+$')"
    assert privacy.masked_detail(f"{rule}: jane@example", "email") == f"{rule}: j***@e***"
    assert privacy.masked_detail("`ann lee` is not a handle", "social_handles") == (
        "`a*** l***` is not a handle"
    )
    # A name beside the address in a personal field, a rule's text holding `): `, and a row
    # rule's detail (the whole row as JSON) stood in clear text (a reviewer's six rows).
    assert privacy.masked_value("Jane Doe <jane@x.com>") == "J*** D*** <j***@x.com>"
    # words cut at brackets, quotes and `|` too (a name glued to the address stayed)
    assert privacy.masked_value('"Jane Doe"<jane@x.com>') == '"J*** D***"<j***@x.com>'
    assert privacy.masked_value("Jane_Doe|jane@x.com") == "J***|j***@x.com"
    # values inside lists and objects are masked as their field
    assert json.loads(privacy.masked_json('{"email": ["jane@x.com"], "note": {"e": "bob@x.com"}}'))
    assert privacy.masked_json('{"email": ["jane@x.com"], "note": {"e": "bob@x.com"}}') == (
        '{"email":["j***@x.com"],"note":{"e":"b***@x.com"}}'
    )
    # What follows a second `@` is no domain: `x@y@JaneDoe` showed `x***@y@JaneDoe`.
    assert privacy.masked_text("x@y@JaneDoe and jane@x.com") == "x***@*** and j***@x.com"
    assert privacy.masked_value("a@b@SecretHandle") == "a***@***"
    assert privacy.masked_text("@jane@JaneDoe, @a@b") == "@j***, @a***"  # a handle's too
    # A handle after punctuation read as an email's domain, which is kept: a domain has a dot.
    assert privacy.masked_text("RT:@JaneDoe x.com/@JaneDoe") == "R***@J*** x***@J***"
    # JSON in a column that is no one's is a row's values, masked entry by entry, as before
    assert privacy.masked_detail('r: {"first_name": "Jane", "x": "a@b.c"}', "notes") == (
        'r: {"first_name":"J***","x":"a***@b.c"}'
    )
    assert json.loads(privacy.masked_json('{"actor_handle": "@jane@JaneDoe"}')) == {
        "actor_handle": "@j***"
    }
    # Each match starts at a word's start: tried at every letter, a 50,000-letter word took
    # 10-17 s, in the publish of an analysts' file. Counted in regex steps, not timed: a word
    # of 200,000 `a`, `@` or `a@` goes through as it is (nothing to mask) or masked whole.
    for word in ("a" * 200_000, "@" * 200_000):
        assert privacy.masked_text(word) == word
    assert privacy.masked_text("a@" * 100_000) == "a***@***"
    # A missing value's detail quotes no value: it read `n***`, as if a handle began with n.
    assert privacy.masked_detail("not_nullable: null", "actor_handle") == "not_nullable: null"
    # a cell whose text reads like that detail is a value like any other (a parse failure's
    # detail is the cell's text)
    assert privacy.masked_detail("not_nullable: jane@x.com", "net_amount") == (
        "not_nullable: j***@x.com"
    )
    assert privacy.masked_detail("not_nullable: Jane Doe", "email") == "not_nullable: J*** D***"
    # A personal column's value that is JSON is that person's value, not a row: its text was
    # left readable (only a row's personal keys were masked). A backtick inside a handle entry
    # ended the quoted value early and left the rest readable.
    assert privacy.masked_detail('str_matches(x): {"n":"Jane Doe"}', "email") == (
        'str_matches(x): {"n***":***"J*** D***"}'
    )
    assert privacy.masked_detail(
        "`x`janedoe`Jane Doe` is not a handle (an optional @, then 1-64 letters)",
        "social_handles",
    ) == ("`x***`j***`J*** D***` is not a handle (an optional @, then 1-64 letters)")
    handle_rule = "str_matches('^@?[A-Za-z0-9_.]{1,64}$')"
    assert privacy.masked_detail(f"{handle_rule}: Bob Stone (IG): bob", "target_handle") == (
        f"{handle_rule}: B*** S*** (I***):*** b***"
    )
    row = {"event_id": "E1", "actor_handle": "ann_lee", "target_handle": None}
    assert json.loads(
        privacy.masked_detail(f"reaction_has_target: {json.dumps(row)}", None).split(": ", 1)[1]
    ) == {"event_id": "E1", "actor_handle": "a***", "target_handle": None}


def test_every_asset_has_an_owner_and_personal_data_is_tagged():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners, key.to_user_string()
        personal = node.tags.get("personal_data")
        expected = "yes" if key.path[0] in ("staging", "intermediate", "activation") else "no"
        assert personal == expected, key.to_user_string()


@pytest.mark.integration
def test_no_email_or_handle_reaches_dagster_storage(december_run):
    """The shared December run stored its events, metadata and logs in a real Dagster home."""
    database, home = december_run.database, december_run.dagster_home
    assert december_run.result.success
    assert any(p.suffix == ".db" for p in home.rglob("*"))  # Dagster's SQLite storage is there
    con = duckdb.connect(str(default_working(database)), read_only=True)
    try:
        emails = {r[0] for r in con.execute("SELECT email FROM staging.customers").fetchall()}
        handles = {
            h
            for (value,) in con.execute(
                "SELECT social_handles FROM staging.customers WHERE social_handles IS NOT NULL"
            ).fetchall()
            for h in str(value).replace(",", ";").split(";")
            if len(h.strip()) > 4
        }
    finally:
        con.close()
    emails.discard(None)
    assert emails and handles
    stored = b"".join(p.read_bytes() for p in Path(home).rglob("*") if p.is_file())
    leaked = sorted(e for e in emails | handles if e.strip().encode() in stored)
    assert leaked == []
