"""Erasure of one person (GDPR art. 17 / CCPA deletion) from the whole warehouse.

`erase(con, customer_id=..., email=...)` does, in this order:

1. Resolve the person. Keys are normalised as identity does (`engagement_box/identity/links.py`):
   customer ids trimmed, emails trimmed and lower-cased, handles trimmed, lower-cased, leading '@'
   removed. The set of keys is closed over the customer profiles (staged ones and quarantined ones):
   every profile with one of the ids, emails or handles adds its id, its email and its handles,
   until nothing new comes in: the same links the identity merge follows, so the person erased is
   the person the marts showed. Erasing by email also erases a duplicate profile with the same
   email in another case or with one of its handles, and erasing by id finds the emails to erase
   guest orders and reviews by. A placeholder (an email or handle on more staged profiles than
   ENGAGEMENT_MAX_PROFILES_PER_KEY, `sql/erasure/placeholder_keys.sql`) links no one in the
   merge, so it is not followed here either, nor erased or logged, unless the request names it.
   How many of the person's staged profiles carried it is kept, by the salted hash of the key
   (`staging.erased_profile_keys`, and the register): identity goes on counting them,
   so the strangers left on it never fall under the limit and merge.
   Then the buyer ids of the person's orders and reviews that no profile has (guest
   checkouts: identity makes each a customer of its own) are added, unless other people's
   emails are under the same id (a shared guest id, counted and left); an id the request names
   brings the email its orders and reviews carry, when they carry one only (`_follow_guest_ids`).
2. In ONE transaction delete every row that carries one of those keys, in every schema of the
   database (staging, intermediate, work, marts, history and any later one): each base table's
   columns named in `IDENTIFYING_COLUMNS` (customer_id, email, referrer/referee ids and email,
   actor/target handles, resolved actor/target ids, the person a profile was merged into),
   discovered from information_schema.
   `intermediate.identity_links` also by its normalised value; `staging.quarantine` by the
   identifying fields of the raw row (`raw_values`), and by keys where the contract does not put
   them (values swapped or misplaced): an email in any field (whole, or a word of a longer value
   such as `Jane Doe <jane@x.com>`), an id in any identifying field, a
   handle among a profile's listed handles (`sql/erasure/delete_quarantine_misplaced_rows.sql`;
   `suppression_mask` keeps the same rows out at ingest). Staged and quarantined rows erased
   are added per source and export file to `staging.erased_rows`, so the ingest reconciliation
   reads rows read = staged + quarantined + erased (`sql/staging/reconciliation.sql`).
   The request is written to `staging.erasure_log` in the same transaction, with salted hashes of
   the keys instead of the keys.
3. CHECKPOINT, so the deleted rows leave the write-ahead log.
4. Rewrite the audience files (`<kind>/<audience>.csv` / `.parquet`) without the person, nor
   anyone else the log holds (by salted hash): the same request after a stop past the commit
   finishes them.
5. Given the published layout, rebuild the file analysts open and rewrite every history Parquet
   file that held the person (`engagement_box/governance/readers.py`). A session opened before
   the erasure reads the rewritten Parquet files through its `marts.*` and `history.*` views
   (the person is gone from them at once; a file retention deleted fails until it reconnects),
   and the old file's own tables (`staging.quarantine`, `marts.snapshot_log`) until it
   reconnects; the old file is unlinked, so that copy ends when the last such session closes.
6. Given the Spark engine's lake (ENGAGEMENT_LAKE_DIR) when it holds published versions, rewrite
   every retained version's files without the person's customer ids
   (`engagement_box/spark/lake.py::erase_customers`). The ids are the ones resolved in step 1,
   plus the profiles of the lake's own `staging.customers` with one of the emails. The lake's
   working tables (`<lake>/tables`) are deleted: every Spark run rebuilds them from the exports.

An erasure request for a person the warehouse does not know is still logged (with the hashes of
the keys given): the ingest then keeps that person out if their rows arrive later. The report says
`found=False`.

What this does not do, honestly:

* Freed storage. DuckDB marks the blocks of deleted rows free after a checkpoint and reuses them
  for later writes; it does not zero them, and the file does not shrink. Until they are reused,
  fragments of the erased rows may still be readable from the raw bytes of the file (compressed,
  but strings can survive as plain text). `compact(database)` copies the live data into a fresh
  file and replaces the old one; run it (with no other connection open) when the erasure must
  reach the disk. Backups and copies of the file are outside the warehouse's reach.
* The raw export files still hold the person. The ingest does not read an unchanged file again;
  a changed or new file is read again, and the ingest must drop the erased people's rows with
  `suppression_mask` (rows it drops count as erased in the reconciliation). The Spark engine
  reads every export again on the run after an erasure (its validated rows are deleted with
  it) and drops the same rows, by the register `erase` writes
  beside the working database (`register_path`: the logged hashes and the salt). A register that
  is missing or behind the log (erasures logged before registers existed, a copied database) is
  written again by the next DuckDB ingest (`refresh_register`), or by the Spark run itself from
  the working database (`register_of`).
* A profile read after the erasure whose customer id was erased (a request by id that came
  before the profile was staged, or, on the Spark engine, after an erasure deleted the lake's
  tables, so its email and handles could not be read) is the person's: both engines' ingest
  erase its email and handles with it (`profile_keys_erased`: kept by hash in
  `staging.erased_profile_keys`, placeholders left), and drop every source's rows carrying
  them, counted as erased. The customers are staged first in a run (the DuckDB staging
  assets' priority; the Spark staging's order), and a customers staging that finds new such
  keys stages its files again with them. Rows staged before the profile was read (an earlier
  run's guest order with its email) stay until a request names the key (`--email`).
* A profile read after the erasure that carries one of the person's emails or handles but not
  an erased id is kept out as theirs (`suppression_mask`), but its other keys (a new customer
  id, a new email) are not erased with it: rows carrying only those, its orders for one, are
  staged as a guest buyer's until a request names them (`--customer-id`, `--email`). Whether a
  new account reusing a handle or an email is the person who asked is the operator's call
  (platforms re-assign handles), so it is not made here.
* A quarantined customer row that matched the person adds to the closure only keys that no
  staged profile of someone else carries, and its customer id only when it matched through
  a key of that customer's own (`_keys_to_follow`): the identity merge never links through a
  quarantined row, so a later export that gave one customer another's email erases neither
  for the other, while a later email of the person's own still finds them.
* Aggregates without a customer id (persona profiles, model fits, snapshot row counts in
  `marts.snapshots`, `source_rows` counts of other identity links) were computed with the person's
  rows and are not recomputed here; they identify nobody. The next pipeline run recomputes the
  current ones; retained versions keep their aggregates.
* Other customers' numbers that moved value to or from the person stay as computed: the CIV
  they ceded to the person as an influencer, for one. In the versions that held the person, CIV
  then no longer sums to 0 and `cie` to 1 (by the person's own CIV and CIE). The next run
  recomputes the current version without them (the erasure changed its inputs); retained
  versions keep those numbers.
* Dagster's own storage (run logs, materialisation metadata previews) is not part of the
  warehouse.

Subject hashes: sha256 over the salt followed by '<kind>:<normalised value>' (kind is customer_id,
email or handle), hex. Salt: the `salt` argument, else the environment variable
ENGAGEMENT_ERASURE_SALT, else a random salt created once and kept in `staging.erasure_salt`.
The trade-off: a salt kept in the warehouse travels with every copy of the file, and with it anyone
holding the file can test a guess ("was jane@example.com erased?") by hashing candidates; the log
is pseudonymous, not anonymous. A salt held outside the warehouse (the environment variable, from a
secret store) stops that, but if it is lost or changed, earlier hashes no longer match and the
ingest would let erased people back in. The log records a fingerprint of the salt
(`salt_fingerprint`), and `erased_subject_hashes(con, salt)` refuses a salt that did not make the
logged hashes, so that mistake fails loudly instead of silently.

No Dagster import here.
"""

import hashlib
import json
import os
import re
import secrets
import shutil
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from engagement_box.activation import audiences
from engagement_box.activation.audiences import (
    AUDIENCE_KINDS,
    neutralize_formulas,
    record_rewritten,
    remove_leftover,
)
from engagement_box.clock import utc_now
from engagement_box.governance import readers, versions
from engagement_box.sql import database_path, load_sql, quote_literal, transaction
from engagement_box.staging.contracts import (
    FULL_WIDTH,
    HALF_WIDTH,
    INVISIBLE,
    INVISIBLE_PATTERN,
    LIST_SEPARATOR,
    MAILTO_PATTERN,
    SOURCES,
    TRIMMED,
    half_width,
)

SALT_ENV = "ENGAGEMENT_ERASURE_SALT"
KINDS = ("customer_id", "email", "handle")

# Columns that identify a person, wherever they appear, and the kind of key they hold. Only these
# names are ever substituted into SQL (as quoted identifiers).
IDENTIFYING_COLUMNS: dict[str, str] = {
    "customer_id": "customer_id",
    "referrer_customer_id": "customer_id",
    "referee_customer_id": "customer_id",
    "actor_customer_id": "customer_id",
    "target_customer_id": "customer_id",
    "resolved_customer_id": "customer_id",  # intermediate.customer_merge: the person of a profile
    "email": "email",
    "referee_email": "email",
    "actor_handle": "handle",
    "target_handle": "handle",
}

# Per source: the identifying columns of its contract. One definition for the staged tables, the
# quarantined raw rows and the ingest's suppression.
SUBJECT_COLUMNS: dict[str, dict[str, str]] = {
    name: {c: IDENTIFYING_COLUMNS[c] for c in source.columns if c in IDENTIFYING_COLUMNS}
    for name, source in SOURCES.items()
}

# A spreadsheet formula neutralised by `audiences.neutralize_formulas`: a quote, then the prefix.
_NEUTRALISED = r"^'[=+\-@\t\r]"


class ErasureError(Exception):
    """An erasure or a suppression cannot be done safely (e.g. a salt that does not match)."""


class SaltMismatch(ErasureError):
    """The salt to hash with did not make the hashes logged before: a setting to put back
    (ENGAGEMENT_ERASURE_SALT), not a fault, so the CLI says it as a bad setting (exit 2)."""


class SharedKey(ErasureError):
    """The request names an email or handle identity counts as shared (carried by more
    profiles than ENGAGEMENT_MAX_PROFILES_PER_KEY): erasing by it would erase every carrier, so
    it is refused unless the request says they are all the person (`shared=True`). The CLI
    says it as a bad request (exit 2)."""


# The carriers a refusal of a shared key names at most (a till's address can be on thousands).
SHOWN_CARRIERS = 20


def limit_words(limit: int, built: bool) -> str:
    """The placeholder limit as a message names it: the one the identity links were built with
    (`built`), else ENGAGEMENT_MAX_PROFILES_PER_KEY's."""
    if built:
        return f"{limit}, ENGAGEMENT_MAX_PROFILES_PER_KEY as the identity links were built with it"
    return f"ENGAGEMENT_MAX_PROFILES_PER_KEY, {limit}"


def _shared_key_problem(
    kind: str, key: str, carriers: list[str], limit: str, erased: int = 0
) -> str:
    """Why an erasure by `key` is refused (`SharedKey`): its carriers (`erased`: the profiles
    erased before that carried it, which identity still counts) against the limit (`limit`:
    `limit_words`)."""
    shown = ", ".join(carriers[:SHOWN_CARRIERS]) + (
        f", ... ({len(carriers)} in all)" if len(carriers) > SHOWN_CARRIERS else ""
    )
    said = "@" + key if kind == "handle" else key
    counted = f"is on {len(carriers)} customer {'profile' if len(carriers) == 1 else 'profiles'}"
    if erased:
        counted += (
            f", and {erased} erased before {'carries' if erased == 1 else 'carry'} it still "
            f"(identity counts {len(carriers) + erased}, more than {limit})"
        )
    else:
        counted += f" (more than {limit})"
    return (
        f"the {kind} {said} {counted}: identity counts it as shared (a till's placeholder, a "
        "household's or a company's address), not as one person's, and erasing by it would "
        f"erase all of them ({shown or 'none staged now'}) and keep out every later row "
        "carrying it. Erase the person by --customer-id (their own profile's), or add "
        "--shared if every one of these profiles is theirs"
    )


@dataclass
class ErasureReport:
    """What one erasure did. Counts only: no personal data, so it can be logged or shown."""

    request_id: str
    requested_at: datetime
    found: bool = False  # a row of the person was deleted or rewritten anywhere (tables, files)
    subjects: dict[str, int] = field(default_factory=dict)  # keys erased per kind
    subject_hashes: list[str] = field(default_factory=list)
    rows_deleted: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows
    erased_rows: dict[str, int] = field(default_factory=dict)  # source -> staged+quarantined rows
    audience_rows_removed: dict[str, int] = field(default_factory=dict)  # file -> rows
    # audience folders an engine remembers that were not rewritten, each with why
    audience_folders_passed: dict[str, str] = field(default_factory=dict)
    checkpointed: bool = False
    published_file: bool = False  # the file analysts open was rebuilt without the person
    history_files_rewritten: list[str] = field(default_factory=list)
    lake_rows_removed: dict[str, int] = field(default_factory=dict)  # Spark lake: mart -> rows
    # the lake holds versions but no working tables (an earlier erasure deleted them): its
    # people were looked for by id and by the audiences' emails only
    lake_tables_missing: bool = False
    # a Spark-only warehouse whose lake tables are gone: the person's emails and handles
    # could not be read from their profile (only the keys the request named are logged); the
    # next Spark run erases those their profile carries when it reads it
    # (`profile_keys_erased`)
    profile_keys_unread: bool = False
    # the placeholder limit this erasure judged shared keys by, in words (`limit_words`)
    profiles_limit: str = ""
    migration_rows: int = 0  # segment_migration's rows, every pair computed again without them
    # emails and handles of the person's profiles that are placeholders (on more profiles than
    # ENGAGEMENT_MAX_PROFILES_PER_KEY): not the person's, so neither erased nor logged
    placeholders_not_followed: int = 0
    # buyer ids of the person's orders and reviews that no profile has (guest checkouts):
    # erased with them; left when their rows also carry someone else's email (a shared id)
    guest_ids_followed: int = 0
    guest_ids_shared: int = 0
    # "source/file" -> rows: another person's duplicates of a key the person's deleted row held,
    # staged in its place (as when a changed file drops a key)
    duplicates_restaged: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows_deleted.values())


@dataclass
class _Subjects:
    customer_id: set[str] = field(default_factory=set)
    email: set[str] = field(default_factory=set)
    handle: set[str] = field(default_factory=set)

    def of(self, kind: str) -> list[str]:
        return sorted(getattr(self, kind))

    def items(self) -> Iterable[tuple[str, str]]:
        for kind in KINDS:
            for value in self.of(kind):
                yield kind, value


# ----------------------------------------------------------------------------------------------
# Normalisation and hashing (pure)


_NO_INVISIBLE = str.maketrans("", "", INVISIBLE)
_HALF_WIDTH = str.maketrans(FULL_WIDTH, HALF_WIDTH)
# The letters whose full lower case (Python's, polars', Java's) is not their own simple one,
# which DuckDB's lower gives: made so first (`sql/intermediate/normalization.sql`).
SIMPLE_LOWER = {"İ": "i", "Σ": "σ"}
_SIMPLE_LOWER = str.maketrans(SIMPLE_LOWER)


def lower_expr(text: pl.Expr) -> pl.Expr:
    """Lower case as identity's macros make it (each letter's simple mapping), in polars."""
    for letter, lowered in SIMPLE_LOWER.items():
        text = text.str.replace_all(letter, lowered, literal=True)
    return text.str.to_lowercase()


def normalize(value: object, kind: str) -> str | None:
    """A key as identity compares it, in the ingest's order: emails and handles without
    invisible characters anywhere (`contracts.INVISIBLE`), trimmed as the ingest trims
    (`contracts.TRIMMED`), emails and handles with full-width ASCII read as ASCII, in Unicode's
    composed form (NFC) as the ingest stages it; emails without a leading `mailto:` and
    trailing dots and whitespace (`contracts.MAILTO_PATTERN`), as the ingest stages them;
    emails and handles lower-cased, handles without leading '@'. Empty text is None. (Composed
    before the invisible characters went, an `e`, a zero-width space and an accent stayed
    decomposed where the ingest staged `é`: a review.)"""
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}; expected one of {KINDS}")
    if value is None:
        return None
    text = str(value)
    if kind in ("email", "handle"):
        text = text.translate(_NO_INVISIBLE)
    text = text.strip(TRIMMED)
    if kind in ("email", "handle"):
        text = text.translate(_HALF_WIDTH)
    text = unicodedata.normalize("NFC", text)
    if kind == "email":
        text = re.sub(MAILTO_PATTERN, "", text).strip(TRIMMED).rstrip(TRIMMED + ".")
    if kind in ("email", "handle"):
        text = text.translate(_SIMPLE_LOWER).lower()
    if kind == "handle":
        text = text.lstrip("@")
    return text or None


def normalized_expr(
    column: str, kind: str, legacy: bool = False, composed: bool = True, folded: bool = True
) -> pl.Expr:
    """`normalize` as a polars expression over a column (cast to text). `legacy`: with the full
    lower case of before (`İ` two characters, a final `Σ` a `ς`), which hashed the keys of
    erasures logged until 2026-12-04 (`suppression_mask` matches those too). `composed=False`
    leaves the text in the form it was written in (NFC costs 0.3 s per 1M values): for
    `suppression_mask`, which composes the few keys it hashes itself. `folded=False`: without
    the full-width fold and an email's `mailto:` and trailing dots, as requests were hashed
    until rules 13 (2026-12-07; `suppression_mask` matches those too)."""
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}; expected one of {KINDS}")
    text = pl.col(column).cast(pl.String)
    if kind in ("email", "handle"):
        text = text.str.replace_all(INVISIBLE_PATTERN, "")
    text = text.str.strip_chars(TRIMMED)
    if folded and kind in ("email", "handle"):
        text = half_width(text)
    if composed:
        text = text.str.normalize("NFC")
    if folded and kind == "email":
        text = text.str.replace(MAILTO_PATTERN, "").str.strip_chars(TRIMMED)
        text = text.str.strip_chars_end(TRIMMED + ".")
    if kind in ("email", "handle"):
        text = text.str.to_lowercase() if legacy else lower_expr(text)
    if kind == "handle":
        text = text.str.strip_chars_start("@")
    return pl.when(text.str.len_bytes() == 0).then(None).otherwise(text).alias(column)


def _hash_normalized(value: str, kind: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}{kind}:{value}".encode()).hexdigest()


def subject_hash(value: str, kind: str, salt: str) -> str:
    """sha256(salt || '<kind>:<normalised value>'), hex. Raises on an empty value."""
    normalized = normalize(value, kind)
    if normalized is None:
        raise ValueError(f"empty {kind}: nothing to hash")
    return _hash_normalized(normalized, kind, salt)


def salt_fingerprint(salt: str) -> str:
    """Which salt made a hash, without telling the salt."""
    return hashlib.sha256(f"engagement-erasure-salt:{salt}".encode()).hexdigest()[:16]


# A word of free text holding an '@': an address inside a longer value (a name beside it, in
# angle brackets), cut only where the contract's email pattern cannot go on (spaces, `,;<>`),
# then stripped of the brackets and quotes around it (`EMAIL_WORD_WRAP`): `(jane@x.com)` is
# hers, `o'brien@x.com` and `a|bob@x.com` are not bob's nor brien's.
EMAIL_WORD = r"[^@\s,;<>]+@[^@\s,;<>]+"
EMAIL_WORD_WRAP = "()[]{}\"'`"


def suppression_mask(
    frame: pl.DataFrame,
    source_name: str,
    hashes: set[str],
    salt: str,
    shifted: pl.Series | None = None,
) -> pl.Series:
    """True for the rows of a raw (text) or typed frame of a source that belong to an erased
    subject: one of the source's identifying columns (`SUBJECT_COLUMNS`), normalised, hashes to
    one of `hashes`. Columns the frame lacks are skipped. Hashes only the distinct values.

    `shifted` marks rows read with too few fields (quarantined as wrong_field_count): their
    values may sit under other columns' names, so any text column of theirs is looked at as
    every kind of key of the source."""
    if source_name not in SUBJECT_COLUMNS:
        raise ValueError(f"unknown source {source_name!r}; expected one of {sorted(SOURCES)}")
    mask = pl.Series("erased", [False] * frame.height, dtype=pl.Boolean)
    if not hashes or frame.height == 0:
        return mask

    def erased_among(keys: pl.Series, kind: str) -> pl.Series:
        # A raw key is in the form it was written in; requests are hashed composed (NFC) since
        # rules 12, in the form they were typed in before: both are looked for.
        erased = [
            v
            for v in keys.drop_nulls().unique()
            if _hash_normalized(v, kind, salt) in hashes
            or (
                not v.isascii()
                and _hash_normalized(unicodedata.normalize("NFC", v), kind, salt) in hashes
            )
        ]
        return keys.is_in(pl.Series(erased, dtype=pl.String).implode()).fill_null(False)

    def matches(column: str, kind: str, rows: pl.DataFrame) -> pl.Series:
        keys = rows.select(normalized_expr(column, kind, composed=False)).to_series()
        hit = erased_among(keys, kind)
        # An erasure logged before the simple lower case hashed `İ` and a final `Σ` as their
        # full lower case: such a key is matched that way too, so that person stays out.
        special = rows[column].cast(pl.String).str.contains("[İΣ]").fill_null(False)
        if kind in ("email", "handle") and special.any():
            legacy = rows.select(
                normalized_expr(column, kind, legacy=True, composed=False)
            ).to_series()
            hit = hit | (erased_among(legacy, kind) & special)
        # An erasure logged before rules 13 hashed a full-width, `mailto:` or dotted address as
        # it was written (a code review: such a person came back after the upgrade took the
        # files in again): where the fold changes a key, its earlier form is looked for too.
        if kind in ("email", "handle"):
            before = rows.select(
                normalized_expr(column, kind, composed=False, folded=False)
            ).to_series()
            changed = before.ne_missing(keys)
            if changed.any():
                hit = hit | (erased_among(before, kind) & changed)
        return hit

    for column, kind in SUBJECT_COLUMNS[source_name].items():
        if column in frame.columns:
            mask = mask | matches(column, kind, frame)
    # A profile's list of handles: each entry is a handle. A new profile carrying an erased
    # person's handle is that person, as identity would merge it.
    for column in SOURCES[source_name].lists:
        if column in frame.columns:
            entries = frame.select(
                pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
                half_width(pl.col(column).cast(pl.String)).str.split(LIST_SEPARATOR),
            ).explode(column)
            rows = entries["_row"].filter(matches(column, "handle", entries)).unique()
            if len(rows):
                mask = mask.scatter(rows, True)
    # An email where the contract puts none (values swapped or misplaced: under customer_id,
    # under channel), or inside a longer value (`Jane Doe <jane@x.com>`, as mail tools write
    # it, under email too): a text value with an '@' is looked at as an email, whole (outside
    # the identifying columns, matched above) and word by word.
    identifying = {*SUBJECT_COLUMNS[source_name], *SOURCES[source_name].lists}
    for column, dtype in frame.schema.items():
        if dtype != pl.String or column == "source_file":
            continue
        text = frame[column]
        wide = text.str.contains("\uff20", literal=True).fill_null(False)  # a full-width @
        if wide.any():  # read as the ingest reads an address (`contracts.FULL_WIDTH`)
            rows_wide = wide.arg_true()
            text = text.scatter(
                rows_wide,
                half_width(text.gather(rows_wide)),
            )
        at = text.str.contains("@", literal=True).fill_null(False) & ~mask
        if not at.any():
            continue
        index = at.arg_true()
        rows = frame[index].with_columns(text.gather(index).alias(column))
        found = (
            matches(column, "email", rows)
            if column not in identifying
            else pl.repeat(False, rows.height, dtype=pl.Boolean, eager=True)
        )
        words = (
            rows.select(
                pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
                pl.col(column).str.extract_all(EMAIL_WORD).alias("_word"),
            )
            .explode("_word")
            .with_columns(pl.col("_word").str.strip_chars(EMAIL_WORD_WRAP))
        )
        in_words = words["_row"].filter(matches("_word", "email", words)).unique()
        if len(in_words):
            found = found.scatter(in_words, True)
        mask = mask.scatter(index, found)
    if shifted is not None and shifted.any():
        index = shifted.arg_true()
        rows = frame[index]
        found = pl.Series([False] * rows.height, dtype=pl.Boolean)
        texts = [c for c, t in rows.schema.items() if t == pl.String and c != "source_file"]
        for kind in sorted(set(SUBJECT_COLUMNS[source_name].values())):
            for column in texts:
                found = found | matches(column, kind, rows)
        mask = mask.scatter(index, found | mask.gather(index))
    return mask.alias("erased")


def drop_erased(
    frame: pl.DataFrame,
    source_name: str,
    hashes: Iterable[str],
    salt: str,
    shifted: pl.Series | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """`frame` without the rows of erased subjects (`suppression_mask`, with `shifted`), and the
    rows dropped per `source_file`: what both engines' ingest take in, and count as erased."""
    mask = suppression_mask(frame, source_name, set(hashes), salt, shifted)
    if not mask.any():
        return frame, {}
    dropped = dict(frame.filter(mask).group_by("source_file").len().iter_rows())
    return frame.filter(~mask), dropped


def dropped_rows(frame: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
    """The rows of `frame` that `drop_erased` left out of `kept` (by file and row): the erased
    customer profiles both engines' ingest hand to `profile_key_hashes`."""
    place = ["source_file", "source_row"]
    return frame.join(kept.select(place), on=place, how="anti")


# ----------------------------------------------------------------------------------------------
# Tables and salt


def ensure_erasure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create `staging.erased_rows` and `staging.erasure_log` (the ingest needs both),
    `staging.erased_profile_keys` and `staging.erasure_finished`."""
    con.execute(load_sql("staging/create_schema"))
    con.execute(load_sql("erasure/create_erased_rows"))
    con.execute(load_sql("erasure/create_erasure_log"))
    con.execute(load_sql("erasure/create_erased_profile_keys"))
    readers.ensure_erasure_finished(con)


def erased_profiles_salt(con: duckdb.DuckDBPyConnection) -> str | None:
    """The salt that hashed `staging.erased_profile_keys` (checked against the erasure log's,
    as the ingest checks it), or None when no erased profile's keys are recorded: identity then
    has no carrier to add to any key's profiles."""
    if not _table_exists(con, "staging", "erased_profile_keys"):
        return None
    if not con.execute(load_sql("erasure/any_erased_profile_key")).fetchone():
        return None
    salt = resolve_salt(con)
    erased_subject_hashes(con, salt)  # refuses a salt that did not make the logged hashes
    return salt


def profile_key_hashes(profiles: pl.DataFrame, salt: str) -> pl.DataFrame:
    """(profile_hash, kind, key_hash) for the email and each handle of customer profile rows
    (`customer_id`, `email`, `social_handles`, as staged or as read), normalised as identity
    normalises keys and hashed as the erasure log hashes subjects (`subject_hash`; the
    profile's hash is its customer id's)."""
    rows: set[tuple[str, str, str]] = set()
    for customer_id, email, handles in profiles.select(
        "customer_id", "email", "social_handles"
    ).iter_rows():
        profile = normalize(customer_id, "customer_id")
        if profile is None:
            continue
        profile_hash = _hash_normalized(profile, "customer_id", salt)
        keys = [("email", normalize(email, "email"))]
        keys += [("handle", normalize(h, "handle")) for h in (handles or "").split(";")]
        rows.update(
            (profile_hash, kind, _hash_normalized(key, kind, salt))
            for kind, key in keys
            if key is not None
        )
    return pl.DataFrame(sorted(rows), schema=["profile_hash", "kind", "key_hash"], orient="row")


def record_erased_profiles(con: duckdb.DuckDBPyConnection, profiles: pl.DataFrame, salt: str):
    """Keep, by hash, the keys erased customer profiles carried (`staging.erased_profile_keys`,
    once per profile and key): identity counts them among a key's profiles
    (`sql/intermediate/erased_placeholder_keys.sql`), so erasing one of six profiles on a
    till's address never leaves five strangers under the placeholder limit, who would merge.
    Written by `erase` for the person's staged profiles, and by the ingest for each erased
    profile it reads again (a warehouse erased before these were kept gets them then)."""
    _insert_profile_keys(con, profile_key_hashes(profiles, salt))


def profile_keys_erased(
    carriers: Iterable[tuple[str, str, str]],
    hashes: Iterable[str],
    limit: int,
    staged_carriers: Callable[[int], dict[tuple[str, str], int]],
) -> set[str]:
    """The key hashes to erase with the customer profiles erased by their customer id: the
    email and handles (`carriers`: (profile hash, kind, key hash) of erased profiles, as
    `profile_key_hashes` makes them) of each profile whose customer id's hash is among
    `hashes` (the logged subjects), that are not logged already. A profile dropped by its id
    is the person's own: an erasure by id logged before the profile was staged (on the Spark
    engine: after an erasure deleted the lake's tables) could not read its email and handles,
    and their orders, reviews and social events were staged by them. A placeholder (a key
    carried by more than `limit` profiles, staged and erased counted, as identity counts
    them) is left, as `erase` leaves it. `staged_carriers(least)`: the staged profiles
    carrying each (kind, key hash) carried by more than `least` of them
    (`sql/erasure/profile_key_carriers.sql`, on either engine). A profile dropped for another
    key (a later account reusing a handle) brings none of its keys: whether it is the person is
    the operator's call (module docstring)."""
    hashes = set(hashes)
    profiles_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for profile, kind, key in carriers:
        profiles_of[(kind, key)].add(profile)
    candidates = {
        (kind, key)
        for (kind, key), profiles in profiles_of.items()
        if key not in hashes and profiles & hashes
    }
    if not candidates:
        return set()
    most = max(len(profiles_of[c]) for c in candidates)
    staged = staged_carriers(limit - most)
    return {
        key
        for kind, key in candidates
        if staged.get((kind, key), 0) + len(profiles_of[(kind, key)]) <= limit
    }


def erased_profiles_keys(
    con: duckdb.DuckDBPyConnection, hashes: Iterable[str], salt: str, memo: bool = False
) -> set[str]:
    """`profile_keys_erased` of the warehouse: the erased profiles' keys it keeps
    (`staging.erased_profile_keys`), counted against its staged profiles by the placeholder
    limit its identity links were built with (`built_profiles_limit`), else
    ENGAGEMENT_MAX_PROFILES_PER_KEY's. Both engines' ingest drops the rows carrying them.
    `memo`: the staged profiles' count by key is kept for the next caller, and taken from the
    last one while the profiles are the same (`_memo_carriers`; not inside a transaction that
    stages them)."""
    from engagement_box.identity.links import max_profiles_per_key

    if not _table_exists(con, "staging", "erased_profile_keys"):
        return set()
    carriers = con.execute(load_sql("erasure/erased_profile_keys")).fetchall()
    if not carriers:
        return set()

    def staged_carriers(least: int) -> dict[tuple[str, str], int]:
        if not _table_exists(con, "staging", "customers"):
            return {}

        def count() -> list[tuple[str, str, int]]:
            con.execute(load_sql("intermediate/create_schema"))
            con.execute(load_sql("intermediate/normalization"))
            return con.execute(
                load_sql("erasure/profile_key_carriers"), {"least": least, "salt": salt}
            ).fetchall()

        rows = _memo_carriers(con, least, salt, count) if memo else count()
        return {(kind, key): int(n) for kind, key, n in rows}

    limit = max_profiles_per_key(built_profiles_limit(con))
    return profile_keys_erased(carriers, hashes, limit, staged_carriers)


def _memo_carriers(
    con: duckdb.DuckDBPyConnection,
    least: int,
    salt: str,
    count: Callable[[], list[tuple[str, str, int]]],
) -> list[tuple[str, str, int]]:
    """`count()` (sql/erasure/profile_key_carriers.sql's rows), or the answer kept when the
    staged profiles, `least` and the salt are those it was computed for
    (sql/erasure/create_profile_key_carrier_memo.sql): every source's staging asked it again
    of the same profiles, 4.2-5.0 s each at 1M (a code review)."""
    con.execute(load_sql("erasure/create_profile_key_carrier_memo"))
    (token,) = con.execute(load_sql("staging/customers_state_token")).fetchone()
    given = {"token": token, "least": least, "fingerprint": salt_fingerprint(salt)}
    kept = con.execute(load_sql("erasure/memo_profile_key_carriers"), given).fetchall()
    if kept:  # its marker row (key_type NULL) and its answer
        return [(kind, key, n) for kind, key, n in kept if kind is not None]
    rows = count()
    answer = pl.DataFrame(
        [*rows, (None, None, None)],
        schema={"key_type": pl.String, "key_hash": pl.String, "profiles": pl.Int64},
        orient="row",
    )
    with transaction(con):
        con.execute(load_sql("erasure/clear_profile_key_carrier_memo"))
        con.register("carrier_rows", answer.to_arrow())
        try:
            con.execute(load_sql("erasure/insert_profile_key_carrier_memo"), given)
        finally:
            con.unregister("carrier_rows")
    return rows


def _insert_profile_keys(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> None:
    """Add (profile_hash, kind, key_hash) rows to `staging.erased_profile_keys`, each once."""
    if not rows.height:
        return
    con.execute(load_sql("erasure/create_erased_profile_keys"))
    con.register("erased_profile_rows", rows.to_arrow())
    try:
        con.execute(load_sql("erasure/insert_erased_profile_keys"))
    finally:
        con.unregister("erased_profile_rows")


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(load_sql("erasure/table_exists"), {"schema": schema, "table": table})
    result = row.fetchone()
    return bool(result and result[0])


def resolve_salt(con: duckdb.DuckDBPyConnection, salt: str | None = None) -> str:
    """The salt to hash with: `salt`, else ENGAGEMENT_ERASURE_SALT, else the warehouse's own
    (created at first use in `staging.erasure_salt`; needs a writable connection then). A
    database without one, beside a register that keeps the salt its hashes were made with (a
    backup from before the first erasure restored, a database started anew), takes that one:
    with a new salt, the register's hashes could never be compared with its own."""
    configured = _configured_salt(con, salt)
    if configured:
        return configured
    working = database_path(con)
    register = _register_record(register_path(working)) if working else None
    kept = register.get("salt") if register else None
    if kept and salt_fingerprint(kept) == register.get("salt_fingerprint"):
        return _store_salt(con, kept)
    if register and register.get("subject_hashes"):
        # hashed with a salt given by ENGAGEMENT_ERASURE_SALT, which is not set now: a new salt
        # would write a register without them, and let those people back (a review)
        raise SaltMismatch(_register_salt_message(register_path(working), register))
    return _store_salt(con, secrets.token_hex(32))


def _register_salt_message(path: Path, register: dict) -> str:
    hashes = len(register.get("subject_hashes") or [])
    return (
        f"{path} lists {hashes} erased people's keys hashed with a salt this warehouse does not "
        f"have (given by {SALT_ENV} when they were erased?): set {SALT_ENV} to that salt. With "
        "another one their hashes match nobody, and the people erased would come back"
    )


def _store_salt(con: duckdb.DuckDBPyConnection, salt: str) -> str:
    """Keep `salt` as the warehouse's own (`staging.erasure_salt`)."""
    con.execute(load_sql("staging/create_schema"))
    con.execute(load_sql("erasure/create_erasure_salt"))
    con.execute(
        load_sql("erasure/insert_erasure_salt"),
        {"salt": salt, "created_at": utc_now()},
    )
    return salt


def _configured_salt(con: duckdb.DuckDBPyConnection, salt: str | None = None) -> str | None:
    """`resolve_salt`'s salt where one is given or kept (None where it would create one)."""
    if salt:
        return salt
    from_env = os.environ.get(SALT_ENV)
    if from_env:
        return from_env
    if _table_exists(con, "staging", "erasure_salt"):
        row = con.execute(load_sql("erasure/stored_salt")).fetchone()
        if row:
            return str(row[0])
    return None


def check_salt(con: duckdb.DuckDBPyConnection, salt: str | None = None) -> None:
    """Raise `SaltMismatch` when the salt an erasure would hash with (`resolve_salt`) did not
    make the hashes logged before. Writes nothing, so an erasure refused for its salt leaves the
    warehouse as it was: where no salt is given or kept, the salt `resolve_salt` would create
    is a new one, which made none of them."""
    if _table_exists(con, "staging", "erasure_log"):
        erased_subject_hashes(con, _configured_salt(con, salt) or "")
    # nor the salt of the register beside it (`write_register` would refuse after the commit),
    # nor a register that cannot be read
    working = database_path(con)
    path = register_path(working) if working else None
    register = _readable_register(path) if path else None
    if not register or not register.get("subject_hashes"):
        return
    configured = _configured_salt(con, salt)
    if configured and salt_fingerprint(configured) != register.get("salt_fingerprint"):
        raise SaltMismatch(_register_salt_message(path, register))
    if not configured and not register.get("salt"):  # its salt was given, and is not now
        raise SaltMismatch(_register_salt_message(path, register))


def erased_subject_hashes(con: duckdb.DuckDBPyConnection, salt: str | None = None) -> set[str]:
    """Every subject hash in `staging.erasure_log` (empty if nothing was ever erased).

    With `salt`, also checks that the logged hashes were made with that salt and raises
    `SaltMismatch` if some were not: they could never match, and erased people would come back.
    """
    if not _table_exists(con, "staging", "erasure_log"):
        return set()
    if salt is not None:
        (other,) = con.execute(
            load_sql("erasure/count_other_salt_requests"),
            {"fingerprint": salt_fingerprint(salt)},
        ).fetchone()
        if other:
            raise SaltMismatch(
                f"{other} erasure request(s) logged in this warehouse were hashed with another "
                f"salt than {_salt_said(salt)}: with it their hashes match nobody, and the "
                f"people erased would come back. Set {SALT_ENV} to the salt that hashed them "
                "(or unset it, if that was the warehouse's own salt)"
            )
    return {r[0] for r in con.execute(load_sql("erasure/subject_hashes")).fetchall()}


def _salt_said(salt: str) -> str:
    """Where the salt in use comes from, in a message (never the salt itself)."""
    from_env = os.environ.get(SALT_ENV)
    if from_env and salt == from_env:
        return f"the one {SALT_ENV} sets"
    if not from_env:
        return f"the warehouse's own ({SALT_ENV} is not set)"
    return "the one given"


def add_erased_rows(
    con: duckdb.DuckDBPyConnection, source_name: str, rows_per_file: dict[str, int]
) -> None:
    """Add erased (or suppressed at ingest) rows per export file to `staging.erased_rows`."""
    for source_file, rows in sorted(rows_per_file.items()):
        if rows:
            con.execute(
                load_sql("erasure/add_erased_rows"),
                {"source": source_name, "source_file": source_file, "rows": rows},
            )


def delete_erased_rows_of_files(
    con: duckdb.DuckDBPyConnection, source_name: str, files: list[str]
) -> None:
    """Forget erased-row counts of files that are being re-ingested (they are read again)."""
    con.execute(
        load_sql("erasure/delete_erased_rows_of_files"),
        {"source": source_name, "files": files},
    )


# ----------------------------------------------------------------------------------------------
# Erasure


def _placeholders(con: duckdb.DuckDBPyConnection, max_profiles: int) -> set[tuple[str, str]]:
    """The (kind, key) pairs identity treats as placeholders (`erasure/placeholder_keys.sql`),
    with the keys that are placeholders only with earlier erasures' carriers counted
    (`intermediate/erased_placeholder_keys.sql`, identity's own statement)."""
    from engagement_box.identity import links

    if not _table_exists(con, "staging", "customers"):
        return set()
    salt = erased_profiles_salt(con)
    name = links.erased_keys_statement(salt)
    con.execute(load_sql(name), links.statement_values(name, max_profiles, salt))
    rows = con.execute(
        load_sql("erasure/placeholder_keys"), {"max_profiles_per_key": max_profiles}
    ).fetchall()
    return {(kind, key) for kind, key in rows}


def built_profiles_limit(con: duckdb.DuckDBPyConnection) -> int | None:
    """The placeholder limit (ENGAGEMENT_MAX_PROFILES_PER_KEY) the warehouse's identity links
    were last built with, or None (never built here): an erasure judges a key shared as the
    warehouse did, whatever the limit in the erasing shell's environment."""
    from engagement_box import incremental

    built = incremental.state(con, incremental.IDENTITY_STATE, None)
    limit = (built or {}).get("settings", {}).get("max_profiles_per_key")
    return int(limit) if limit is not None else None


def _resolve(
    con: duckdb.DuckDBPyConnection,
    subjects: _Subjects,
    max_profiles: int | None = None,
    shared: bool = False,
    salt: str = "",
    built: bool = False,
) -> tuple[bool, int]:
    """Close the keys over the customer profiles, as the identity merge links them: never over
    a placeholder (an email or handle on more profiles than the limit). A placeholder the
    request names is refused (`SharedKey`) unless `shared` says its carriers are all the
    person. (whether any profile matched, how many placeholders were not followed)."""
    from engagement_box.identity.links import max_profiles_per_key

    limit = max_profiles_per_key(max_profiles)
    placeholders = _placeholders(con, limit)
    asked = set(subjects.items())
    if not shared:
        for kind, key in sorted(asked & placeholders):
            rows = con.execute(
                load_sql("erasure/customer_profiles"),
                {
                    "ids": [],
                    "emails": [key] if kind == "email" else [],
                    "handles": [key] if kind == "handle" else [],
                },
            ).fetchall()
            carriers = sorted({row[0] for row in rows if row[0]})
            erased = _erased_carriers(con, kind, key, salt)
            said = limit_words(limit, built)
            raise SharedKey(_shared_key_problem(kind, key, carriers, said, erased))
    skipped: set[tuple[str, str]] = set()

    def follow(kind: str, value: str) -> None:
        if (kind, value) in placeholders and (kind, value) not in asked:
            skipped.add((kind, value))
        else:
            getattr(subjects, kind).add(value)

    queries = [
        name
        for name, (schema, table) in (
            ("erasure/customer_profiles", ("staging", "customers")),
            ("erasure/quarantined_customer_profiles", ("staging", "quarantine")),
        )
        if _table_exists(con, schema, table)
    ]
    found = False
    while True:
        before = (len(subjects.customer_id), len(subjects.email), len(subjects.handle))
        params = {
            "ids": subjects.of("customer_id"),
            "emails": subjects.of("email"),
            "handles": subjects.of("handle"),
        }
        for query in queries:
            for customer_id, email, handles in con.execute(load_sql(query), params).fetchall():
                found = True
                if query == "erasure/quarantined_customer_profiles":
                    customer_id, email, handles = _keys_to_follow(
                        con, subjects, customer_id, email, handles or []
                    )
                if customer_id:
                    subjects.customer_id.add(customer_id)
                if email:
                    follow("email", email)
                for handle in handles or []:
                    if handle:
                        follow("handle", handle)
        if (len(subjects.customer_id), len(subjects.email), len(subjects.handle)) == before:
            return found, len(skipped)


def _guest_ids_step(
    emails_of: dict[str, set[str | None]],
    subjects: _Subjects,
    asked: set[str],
    profile_carries: Callable[[str], bool],
    followed: set[str],
    shared: set[str],
) -> bool:
    """One pass of the guest-id rule, on either engine's rows (`emails_of`: each candidate
    buyer id -> the emails its orders and reviews carry, None for none): an id whose every
    email is the person's is added to `subjects` and `followed`; one carrying someone else's
    email goes to `shared`; an id the request names (`asked`) brings its one email unless a
    profile carries it (`profile_carries`: a gift's recipient). Whether `subjects` grew."""
    grown = False
    for customer_id, emails in emails_of.items():
        carried = {e for e in emails if e is not None}
        others = carried - subjects.email
        if customer_id in asked:
            if len(carried) == 1 and others and not profile_carries(next(iter(others))):
                subjects.email |= others
                grown = True
        elif others:
            shared.add(customer_id)
        elif customer_id not in subjects.customer_id:
            subjects.customer_id.add(customer_id)
            followed.add(customer_id)
            grown = True
    return grown


def _follow_guest_ids(
    con: duckdb.DuckDBPyConnection, subjects: _Subjects, asked: set[str]
) -> tuple[int, int]:
    """Add to the person the buyer ids of their orders and reviews that no customer profile has
    (a guest checkout, an orders-only export): identity makes each such id a customer of its
    own, so erasing the person by email left that customer, with the orders that carry no
    email, in every mart and version. An id is followed when every email its rows carry is
    the person's (or none); one that also carries another email is shared (a shop's "GUEST")
    and left, counted. An id the request itself names (`asked`) brings the email its rows
    carry when they carry one only and no profile has it (with two, one may be a gift's
    recipient). (ids followed, ids left as shared)."""
    tables = [t for t in ("orders", "reviews") if _table_exists(con, "staging", t)]
    if not tables:
        return 0, 0
    profiles = _table_exists(con, "staging", "customers")
    con.execute(load_sql(f"erasure/create_{'' if profiles else 'no_'}profile_ids_view"))
    followed: set[str] = set()
    shared: set[str] = set()

    def profile_carries(email: str) -> bool:
        return profiles and _profile_carries(con, email)

    while True:
        emails_of: dict[str, set[str | None]] = defaultdict(set)
        params = {"emails": subjects.of("email"), "ids": subjects.of("customer_id")}
        for table in tables:
            rows = con.execute(load_sql("erasure/guest_buyer_ids", table=table), params)
            for customer_id, email in rows.fetchall():
                emails_of[customer_id].add(email)
        if not _guest_ids_step(emails_of, subjects, asked, profile_carries, followed, shared):
            return len(followed), len(shared - subjects.customer_id)


def _profile_carries(con: duckdb.DuckDBPyConnection, email: str) -> bool:
    """Whether a staged customer profile carries `email` (normalised)."""
    params = {"ids": [], "emails": [email], "handles": []}
    return bool(con.execute(load_sql("erasure/customer_profiles"), params).fetchall())


def _keys_to_follow(
    con: duckdb.DuckDBPyConnection,
    subjects: _Subjects,
    customer_id: str | None,
    email: str | None,
    handles: list[str],
) -> tuple[str | None, str | None, list[str]]:
    """Which keys of a quarantined customer row that matched the person lead to them. The
    identity merge never links through such a row, so:

    - its email and handles, unless a staged profile of someone else (neither the row's
      customer nor the person) carries them: erasing Bob followed his row that named Carol's
      email, and erased Carol;
    - its customer id when the row matched through it, when no staged profile has that id (a
      profile only the quarantine holds), or when it matched through a key that no other
      customer's staged profile carries (a later email of the row's customer): erasing Carol by
      her email matched Bob's row naming it, which leads to no one.

    Asked again on each pass of `_resolve`, as the person's keys grow
    (`sql/erasure/staged_owners_of_keys.sql`)."""
    handles = [h for h in handles if h]
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    rows = con.execute(
        load_sql("erasure/staged_owners_of_keys"),
        {"id": customer_id, "email": email, "handles": handles},
    ).fetchall()
    for kind, key, owner in rows:
        owners[(kind, key)].add(owner)
    person = subjects.customer_id

    def elsewhere(kind: str, key: str) -> set[str]:  # staged customers other than the row's
        return owners[(kind, key)] - {customer_id}

    keys = [("email", email)] if email else []
    keys += [("handle", h) for h in handles]
    follow_id = customer_id is not None and (
        customer_id in person
        or not owners[("customer_id", customer_id)]
        or any(key in getattr(subjects, kind) and not elsewhere(kind, key) for kind, key in keys)
    )
    if not follow_id and customer_id is not None:
        return None, None, []
    return (
        customer_id,
        email if email and not elsewhere("email", email) - person else None,
        [h for h in handles if not elsewhere("handle", h) - person],
    )


def _delete(
    con: duckdb.DuckDBPyConnection, subjects: _Subjects
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Delete the person's rows everywhere; (rows per table, erased rows per source and file)."""
    rows_deleted: dict[str, int] = defaultdict(int)
    erased: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    # Every base table with an identifying column (the staged sources among them).
    targets = con.execute(
        load_sql("erasure/identifying_columns"), {"columns": sorted(IDENTIFYING_COLUMNS)}
    ).fetchall()
    for schema, table, column in targets:
        kind = IDENTIFYING_COLUMNS[column]
        values = subjects.of(kind)
        if not values:
            continue
        params = {"values": values, "kind": kind}
        if schema == "staging" and table in SOURCES:
            files = con.execute(
                load_sql("erasure/delete_staged_rows", table=table, column=column), params
            ).fetchall()
            for (source_file,) in files:
                erased[table][source_file] += 1
            count = len(files)
        else:
            row = con.execute(
                load_sql("erasure/delete_rows", schema=schema, table=table, column=column), params
            ).fetchone()
            count = int(row[0]) if row else 0
        rows_deleted[f"{schema}.{table}"] += count

    # Quarantined raw rows, by the identifying fields of their source.
    if _table_exists(con, "staging", "quarantine"):
        _delete_quarantined(con, subjects, rows_deleted, erased)

    # Identity links keyed by the person's values (unresolved links too).
    if _table_exists(con, "intermediate", "identity_links"):
        row = con.execute(
            load_sql("erasure/delete_identity_links"),
            {
                "ids": subjects.of("customer_id"),
                "emails": subjects.of("email"),
                "handles": subjects.of("handle"),
            },
        ).fetchone()
        rows_deleted["intermediate.identity_links"] += int(row[0]) if row else 0

    return (
        {k: v for k, v in sorted(rows_deleted.items()) if v},
        {s: dict(sorted(f.items())) for s, f in sorted(erased.items())},
    )


def _create_normalize_macros(con: duckdb.DuckDBPyConnection) -> None:
    """`erasure_normalized` and what it calls, for `con`: keys are normalised by identity's own
    rules (created if identity never ran here) after the ingest's trim."""
    con.execute(load_sql("intermediate/create_schema"))
    con.execute(load_sql("intermediate/normalization"))
    con.execute(load_sql("erasure/create_trim_macro"))
    con.execute(load_sql("erasure/create_normalize_macro"))


def _delete_quarantined(
    con: duckdb.DuckDBPyConnection,
    subjects: _Subjects,
    rows_deleted: dict[str, int],
    erased: dict[str, dict[str, int]],
) -> None:
    """Delete the quarantined raw rows (`staging.quarantine`) that hold one of the person's
    keys, counted into `rows_deleted` and, per source and file, `erased`: by the identifying
    fields of their source, under any column's name in a row read with too few fields, and
    where the contract does not put them."""
    for source_name, columns in SUBJECT_COLUMNS.items():
        for column, kind in columns.items():
            values = subjects.of(kind)
            if not values:
                continue
            files = con.execute(
                load_sql("erasure/delete_quarantine_rows"),
                {"source": source_name, "path": f"$.{column}", "values": values, "kind": kind},
            ).fetchall()
            for (source_file,) in files:
                erased[source_name][source_file] += 1
            rows_deleted["staging.quarantine"] += len(files)
        # Rows read with too few fields: a key may be under any column's name.
        for kind in sorted(set(columns.values())):
            values = subjects.of(kind)
            if not values:
                continue
            files = con.execute(
                load_sql("erasure/delete_quarantine_shifted_rows"),
                {"source": source_name, "values": values, "kind": kind},
            ).fetchall()
            for (source_file,) in files:
                erased[source_name][source_file] += 1
            rows_deleted["staging.quarantine"] += len(files)

    # Keys where the contract does not put them: an email in any field, an id in any of
    # the source's identifying fields, a handle among a profile's listed handles.
    for source_name, columns in SUBJECT_COLUMNS.items():
        params = {
            "source": source_name,
            "emails": subjects.of("email"),
            "ids": subjects.of("customer_id"),
            "handles": subjects.of("handle"),
            "fields": sorted(columns),
            "lists": list(SOURCES[source_name].lists),
            "email_word": EMAIL_WORD,
            "email_wrap": EMAIL_WORD_WRAP,
        }
        files = con.execute(load_sql("erasure/delete_quarantine_misplaced_rows"), params)
        for (source_file,) in files.fetchall():
            erased[source_name][source_file] += 1
            rows_deleted["staging.quarantine"] += 1


def _restage_other_duplicates(
    con: duckdb.DuckDBPyConnection, deleted: dict[str, int], request_id: str, at: datetime
) -> dict[str, int]:
    """Another person's row that repeated a key the erased person's staged row held (a
    conflicting export) stayed quarantined as its duplicate, with its key staged nowhere: every
    later run then failed its reconciliation check. The first such duplicate is staged in its
    place, as when a changed file drops a key (`ingestion.restage_orphaned_duplicates`)."""
    from engagement_box.staging import ingestion  # it imports this module

    moved: dict[str, int] = {}
    if not _table_exists(con, "staging", "quarantine"):
        return moved  # nothing was ever quarantined: no duplicate
    for name, source in SOURCES.items():
        if not deleted.get(f"staging.{name}") or not ingestion.orphaned_duplicates(con, name):
            continue
        for file, rows in ingestion.restage_orphaned_duplicates(
            con, source, request_id, at
        ).items():
            moved[file] = moved.get(file, 0) + rows
    return moved


def _compare_left_duplicates(con: duckdb.DuckDBPyConnection, request_id: str) -> None:
    """After the erasure's commit: the duplicates left of keys a restage staged from another
    row are compared with it (`ingestion.compare_repeats`), as after an ingest."""
    from engagement_box.staging import ingestion  # it imports this module

    for name, source in SOURCES.items():
        report = ingestion.IngestReport(source=name, run_id=request_id)
        ingestion.compare_repeats(con, source, request_id, report)


def _requested(customer_id: str | None, email: str | None, handle: str | None) -> _Subjects:
    """The keys a request names, normalised as the staged rows' keys are compared; ValueError
    for an empty one, or none at all."""
    subjects = _Subjects()
    given = [(customer_id, "customer_id"), (email, "email"), (handle, "handle")]
    for value, kind in given:
        if value is None:
            continue
        normalized = normalize(value, kind)
        if normalized is None:
            raise ValueError(f"empty {kind} given: nothing to erase")
        getattr(subjects, kind).add(normalized)
    if not subjects.customer_id and not subjects.email and not subjects.handle:
        raise ValueError("give a customer_id, an email or a handle to erase")
    return subjects


def _person_in_lake(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    subjects: _Subjects,
    asked: set[str],
    report: ErasureReport,
    max_profiles: int | None,
    shared: bool,
    used_salt: str,
    built: bool,
) -> tuple[bool, bool]:
    """The person in a Spark lake, before its files go: their staged profiles there logged
    with the request (`record_erased_profiles`), the guest ids and audience ids that are
    theirs added to `subjects`, and what `report` says of the lake's tables. Returns (whether
    the lake holds the person, whether its quarantine could not be read)."""
    report.lake_tables_missing = _lake_table(lake, "staging.customers") is None
    report.profile_keys_unread = report.lake_tables_missing and not _table_exists(
        con, "staging", "customers"
    )
    # Their profiles there, closed over their emails and handles as `_resolve` closes
    # them here (a Spark-only warehouse has no staged rows here), the guest ids of
    # their orders and reviews, and the ids its audiences give their emails: logged
    # with the request, so its ingest keeps them out too.
    in_lake = lake_person_profiles(
        lake,
        subjects,
        max_profiles,
        erased=lambda kind, key: _erased_carriers(con, kind, key, used_salt),
        shared=shared,
        # a Spark-only warehouse whose lake tables an erasure deleted: nothing to count
        uncounted=_lake_tables_gone(lake) and not _table_exists(con, "staging", "customers"),
        built=built,
    )
    record_erased_profiles(con, in_lake, used_salt)
    guests = lake_guest_ids(lake, subjects, asked)
    report.guest_ids_followed += len(guests)
    audience_ids = lake_audience_ids(lake, subjects.of("email"))
    subjects.customer_id |= audience_ids
    in_lake_found = bool(
        in_lake.height or guests or audience_ids or lake_holds_ids(lake, subjects.of("customer_id"))
    )
    quarantined = False if in_lake_found else lake_quarantine_holds(lake, subjects)
    in_lake_found = in_lake_found or bool(quarantined)
    # an unreadable lake quarantine: its working tables go, as if it held the person
    unread_lake_quarantine = quarantined is None
    return in_lake_found, unread_lake_quarantine


def _erase_from_audience_folders(
    con: duckdb.DuckDBPyConnection,
    audience_dir: Path,
    working: Path | None,
    lake: Path | str | None,
    subjects: _Subjects,
    used_salt: str,
    consent_before,
    report: ErasureReport,
) -> None:
    """The person's rows out of the audience files: ENGAGEMENT_AUDIENCE_DIR's folder and the
    others either engine remembers writing, not a folder written since for another warehouse
    or lake (`working`: the working database's path, None in memory); each folder's consent
    files follow the consent after the erasure. What was removed and what was passed by go into
    `report`."""
    from engagement_box.identity.links import live_consent

    # ENGAGEMENT_AUDIENCE_DIR's folder, then the others each engine remembers writing (the
    # two engines have a folder each): paths in those are said with their folder
    folders = [audience_dir.absolute()]
    records = audiences.folder_records(working, lake)
    remembered, passed = audiences.remembered_folders(records)
    for folder in remembered:
        if folder.resolve() not in [f.resolve() for f in folders]:
            folders.append(folder)
    owners = [o for o in (working, lake) if o]
    hashes = erased_subject_hashes(con, used_salt)
    consent_after = live_consent(con) if consent_before is not None else None
    for folder in (f for f in folders if f.is_dir()):
        if audiences.written_for_other(folder, owners):
            # each export rewrites a folder whole: it holds another warehouse's people
            passed[str(folder.resolve())] = "written since for another warehouse or lake"
            continue
        removed = erase_from_audiences(
            folder, subjects.of("customer_id"), subjects.of("email"), hashes, used_salt, passed
        )
        audiences.follow_consent(folder, consent_before, consent_after)
        if folder != folders[0]:
            removed = {str(folder / path): rows for path, rows in removed.items()}
        report.audience_rows_removed.update(removed)
        passed.pop(str(folder.resolve()), None)  # rewritten (another record named it)
    report.audience_folders_passed = passed
    report.found = report.found or bool(report.audience_rows_removed)


def erase(
    con: duckdb.DuckDBPyConnection,
    *,
    customer_id: str | None = None,
    email: str | None = None,
    handle: str | None = None,
    audience_dir: Path | str | None = None,
    salt: str | None = None,
    now: datetime | None = None,
    published: readers.Layout | None = None,
    lake: Path | str | None = None,
    max_profiles: int | None = None,
    shared: bool = False,
) -> ErasureReport:
    """Erase one person from every table, every retained version and the audience files.

    The person is the profiles the identity merge would make one (`max_profiles`: its
    placeholder limit, default the one the identity links were built with
    (`built_profiles_limit`), else ENGAGEMENT_MAX_PROFILES_PER_KEY): a placeholder email or handle
    on their profile is not followed to the strangers who carry it, nor erased or logged. A
    request that names a placeholder is refused (`SharedKey`, nothing written) unless `shared`
    says every profile carrying it is the person's: then all of them are erased and the key is
    logged.

    `con` is the working database. With `published` (the analysts' file and its history files),
    that file is rebuilt without the person and every history Parquet file holding them is
    rewritten (`readers.publish(..., erased=True)`); files of expired versions are deleted.
    Every logged request's hashes are then written beside the working database for the Spark
    engine's ingest (`register_path`, `write_register`; not for a database in memory).

    See the module docstring for what is matched, what is logged and what is not reached.
    Raises ValueError when no customer id, email or handle (non-empty) is given, and
    `SaltMismatch` (before writing anything) when the salt did not make the logged hashes.
    """
    subjects = _requested(customer_id, email, handle)

    # Before anything is written (the tables, identity's macros): a salt that did not make the
    # logged hashes is refused with the warehouse as it was.
    check_salt(con, salt)
    requested_at = (now or utc_now()).replace(tzinfo=None)
    report = ErasureReport(request_id=uuid.uuid4().hex, requested_at=requested_at)
    ensure_erasure_tables(con)
    _create_normalize_macros(con)

    from engagement_box.identity.links import live_consent, max_profiles_per_key

    # the limit the warehouse's identity links were built with, where they were
    built_limit = built_profiles_limit(con) if max_profiles is None else None
    built = built_limit is not None
    if built:
        max_profiles = built_limit
    report.profiles_limit = limit_words(max_profiles_per_key(max_profiles), built)
    # the consent the audience files follow, before and after: a consenting person leaving
    # is not a change of consent for the next run to write the files again for
    consent_before = live_consent(con) if audience_dir is not None else None
    with transaction(con):
        used_salt = resolve_salt(con, salt)
        erased_subject_hashes(con, used_salt)  # refuse a salt that did not make earlier hashes
        asked = set(subjects.customer_id)  # the ids the request names, not those it finds
        report.found, report.placeholders_not_followed = _resolve(
            con, subjects, max_profiles, shared, used_salt, built
        )
        report.guest_ids_followed, report.guest_ids_shared = _follow_guest_ids(con, subjects, asked)
        # The keys their staged profiles carried go on counting for identity (by hash), so the
        # strangers left on a placeholder stay more than the limit (`record_erased_profiles`).
        if _table_exists(con, "staging", "customers"):
            staged = con.execute(
                load_sql("erasure/person_profiles"), {"ids": subjects.of("customer_id")}
            ).pl()
            record_erased_profiles(con, staged, used_salt)
        in_lake_found = unread_lake_quarantine = False
        if lake is not None:  # a Spark lake's staged profiles of the person, before it goes
            in_lake_found, unread_lake_quarantine = _person_in_lake(
                con, Path(lake), subjects, asked, report, max_profiles, shared, used_salt, built
            )
        report.rows_deleted, erased = _delete(con, subjects)
        report.found = report.found or bool(report.rows_deleted)
        report.duplicates_restaged = _restage_other_duplicates(
            con, report.rows_deleted, report.request_id, requested_at
        )
        if any(t.startswith(("work.", "history_rows.")) for t in report.rows_deleted):
            # The migration pairs counted the person: every pair again, from what is left.
            report.migration_rows = versions.refresh_migration(con, recompute=True)
        recorded = _table_exists(con, "staging", "ingested_files")  # not in seeded tables
        for source_name, per_file in erased.items():
            add_erased_rows(con, source_name, per_file)
            if recorded:  # each file's rows staged and quarantined now: read = staged + ...
                con.execute(
                    load_sql("erasure/recount_ingested_files", table=source_name),
                    {"source": source_name, "files": list(per_file)},
                )
        report.erased_rows = {s: sum(f.values()) for s, f in erased.items()}
        report.subjects = {kind: len(subjects.of(kind)) for kind in KINDS}
        report.subject_hashes = sorted(
            {_hash_normalized(value, kind, used_salt) for kind, value in subjects.items()}
        )
        con.execute(
            load_sql("erasure/insert_erasure_log"),
            {
                "request_id": report.request_id,
                "subject_hashes": report.subject_hashes,
                "requested_at": requested_at,
                "rows_deleted": json.dumps(report.rows_deleted, sort_keys=True),
                "salt_fingerprint": salt_fingerprint(used_salt),
            },
        )

    if report.duplicates_restaged:  # the duplicates left of those keys, against the row staged
        _compare_left_duplicates(con, report.request_id)
    # the consents later customers files changed, kept again for the next run's steps
    versions.keep_later_consents(con)

    working = database_path(con)
    if working:
        write_register(con, register_path(working), salt)

    try:
        con.execute("CHECKPOINT")
        report.checkpointed = True
    except duckdb.Error:  # another transaction of this database is open; the next one will do
        report.checkpointed = False

    if published is not None:
        done = readers.publish(con, published, erased=True, now=requested_at)
        report.published_file = done.built
        report.history_files_rewritten = done.files_rewritten
        report.found = report.found or bool(report.history_files_rewritten)

    if lake is not None:
        report.lake_rows_removed = erase_from_lake(
            Path(lake), subjects, found=in_lake_found or unread_lake_quarantine
        )
        report.found = report.found or in_lake_found
        report.found = report.found or bool(report.lake_rows_removed)

    if audience_dir is not None:
        _erase_from_audience_folders(
            con, Path(audience_dir), working, lake, subjects, used_salt, consent_before, report
        )
    if published is not None and audience_dir is not None:
        # Every file rewritten: finished. Until then the next publish checks every history
        # file and the next audience step writes the files again (`readers.unfinished_erasures`).
        # Requests stopped before this one are finished too, unless a Spark lake holds
        # versions: the lake's files lost this request's person only (a review found the
        # earlier person still in them).
        from engagement_box.spark import lake as spark_lake

        earlier = lake is not None and spark_lake.has_lake(Path(lake))
        done = [report.request_id] if earlier else readers.unfinished_erasures(con)
        readers.finish_erasures(con, done, requested_at)
    return report


# ----------------------------------------------------------------------------------------------
# The register: the logged erasures for the Spark engine's ingest

REGISTER_SUFFIX = ".erasures.json"


def register_path(working: Path | str) -> Path:
    """Where the register of the working database `working` is: beside it."""
    return Path(f"{working}{REGISTER_SUFFIX}")


def write_register(con: duckdb.DuckDBPyConnection, path: Path, salt: str | None = None) -> None:
    """Every subject hash of `staging.erasure_log` with the salt's fingerprint, and the salt
    itself when it is the warehouse's own (not one given as `salt` or by ENGAGEMENT_ERASURE_SALT,
    which the reader must then be given again): a JSON file replaced whole (written beside it,
    then renamed), so a reader never sees half of one. The Spark engine reads it instead of the
    working database, which a DuckDB run may hold open."""
    used = resolve_salt(con, salt)
    stored = None
    if salt is None and not os.environ.get(SALT_ENV):
        stored = used  # the warehouse's own salt, as staging.erasure_salt holds it
    hashes = erased_subject_hashes(con, used)
    keys = {tuple(k) for k in _erased_profile_keys(con)}
    # The register only grows: what it lists under the same salt stays, though this database's
    # log lacks it (a backup restored beside today's register, before its people were erased
    # again: an erase then wrote the register from the older log, and the people erased after
    # the backup left it; a backup review).
    earlier = _readable_register(path)
    if earlier and earlier.get("salt_fingerprint") == salt_fingerprint(used):
        hashes |= set(earlier.get("subject_hashes") or [])
        keys |= {tuple(k) for k in earlier.get("erased_profile_keys") or []}
    elif earlier and earlier.get("subject_hashes"):  # never overwritten under another salt
        raise SaltMismatch(_register_salt_message(path, earlier))
    record = {
        "salt_fingerprint": salt_fingerprint(used),
        "salt": stored,
        "subject_hashes": sorted(hashes),
        "erased_profile_keys": [list(k) for k in sorted(keys)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    hidden = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    hidden.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(hidden, path)


def _register_record(path: Path) -> dict | None:
    """The register at `path` as written, or None (none there, or unreadable)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("subject_hashes"), list):
        return None
    return record


def _readable_register(path: Path) -> dict | None:
    """The register at `path`, None when there is none; ErasureError when one is there and
    cannot be read: it is never taken for an empty one, nor written over."""
    record = _register_record(path)
    if record is None and path.exists():
        raise ErasureError(_unreadable_register(path))
    return record


def _erased_profile_keys(con: duckdb.DuckDBPyConnection) -> list[list[str]]:
    """[profile hash, kind, key hash] of every key erased profiles carried."""
    if not _table_exists(con, "staging", "erased_profile_keys"):
        return []
    return [list(row) for row in con.execute(load_sql("erasure/erased_profile_keys")).fetchall()]


def _lake_table(lake: Path, name: str) -> Path | None:
    """The folder of the Spark lake's working table `name` (`staging.customers`), or None."""
    pointer = lake / "tables" / name / "_current"
    if not pointer.exists():
        return None
    return pointer.parent / pointer.read_text(encoding="utf-8").strip()


def lake_guest_ids(lake: Path, subjects: _Subjects, asked: set[str]) -> set[str]:
    """`_follow_guest_ids` on the Spark lake's staged orders and reviews: the buyer ids no lake
    profile has, of rows carrying one of the person's emails, under which every email is the
    person's; an id the request names (`asked`) brings the one email its rows carry. The
    emails found are added to `subjects`. Returns the ids followed."""
    profiles = _lake_table(lake, "staging.customers")
    profile_ids: set[str] = set()
    profile_emails: set[str] = set()
    if profiles is not None:
        staged = (
            pl.scan_parquet(profiles / "*.parquet")
            .select(
                normalized_expr("customer_id", "customer_id"), normalized_expr("email", "email")
            )
            .collect()
        )
        profile_ids = set(staged["customer_id"].drop_nulls())
        profile_emails = set(staged["email"].drop_nulls())
    rows = []
    for table in ("staging.orders", "staging.reviews"):
        folder = _lake_table(lake, table)
        if folder is not None:
            rows.append(
                pl.scan_parquet(folder / "*.parquet").select(
                    normalized_expr("customer_id", "customer_id").alias("id"),
                    normalized_expr("email", "email").alias("email"),
                )
            )
    if not rows:
        return set()
    frame = (
        pl.concat(rows)
        .filter(pl.col("id").is_not_null() & ~pl.col("id").is_in(list(profile_ids)))
        .collect()
    )
    followed: set[str] = set()
    while True:
        emails = subjects.of("email")
        theirs = set(frame.filter(pl.col("email").is_in(emails))["id"]) | (asked & set(frame["id"]))
        emails_of = {
            guest: set(part["email"])
            for (guest,), part in frame.filter(pl.col("id").is_in(list(theirs))).group_by("id")
        }
        if not _guest_ids_step(
            emails_of, subjects, asked, profile_emails.__contains__, followed, set()
        ):
            return followed


def lake_person_profiles(
    lake: Path,
    subjects: _Subjects,
    max_profiles: int | None = None,
    erased: Callable[[str, str], int] = lambda kind, key: 0,
    shared: bool = False,
    uncounted: bool = False,
    built: bool = False,
) -> pl.DataFrame:
    """The lake's staged profiles of the person, their ids, emails and handles added to
    `subjects` until no new one comes (the links identity follows), never through an email or
    handle on more profiles than the placeholder limit unless the request named it: the
    lake's distinct profiles carrying it plus `erased(kind, key)`, the profiles erased before
    that carried it (identity counts them too: erasing one of six profiles on a till's address
    left five strangers, who were then erased with the next one). A placeholder the request
    names is refused (`SharedKey`) unless `shared` (as `_resolve` refuses it); so is any email
    or handle when `uncounted` (the lake's profiles are gone and none are staged here, so its
    carriers cannot be counted)."""
    from engagement_box.identity.links import max_profiles_per_key

    limit = max_profiles_per_key(max_profiles)
    asked = set(subjects.items())
    carried = lake_key_counts(lake)
    for kind, key in sorted(asked):
        if shared or kind == "customer_id":
            continue
        if uncounted:  # no staged profiles anywhere to count the key's carriers on
            said = "@" + key if kind == "handle" else key
            raise SharedKey(
                "the Spark lake's working tables are gone (an earlier erasure deleted them; "
                f"the next Spark run writes them again), so whether the {kind} {said} is one "
                "person's or shared by several (a till's placeholder, a household's address) "
                "cannot be told, and an erasure by a shared one keeps out every later row "
                "carrying it. Erase the person by --customer-id, or run the Spark job "
                "(spark_pipeline) first, or add --shared if every profile carrying it is theirs"
            )
        erased_before = erased(kind, key)
        if carried.get((kind, key), 0) + erased_before > limit:
            named = _Subjects()
            getattr(named, kind).add(key)
            ids = lake_profiles(lake, named).select(normalized_expr("customer_id", "customer_id"))
            carriers = sorted(set(ids.to_series().drop_nulls()))
            raise SharedKey(
                _shared_key_problem(kind, key, carriers, limit_words(limit, built), erased_before)
            )
    found = lake_profiles(lake, subjects)
    while True:
        before = (len(subjects.customer_id), len(subjects.email), len(subjects.handle))
        ids = found.select(normalized_expr("customer_id", "customer_id")).to_series()
        subjects.customer_id |= set(ids.drop_nulls())
        emails = found.select(normalized_expr("email", "email")).to_series().drop_nulls()
        handles = (
            found.select(pl.col("social_handles").str.split(LIST_SEPARATOR))
            .explode("social_handles")
            .select(normalized_expr("social_handles", "handle"))
            .to_series()
            .drop_nulls()
        )
        for kind, keys in (("email", emails), ("handle", handles)):
            for key in set(keys):
                profiles = carried.get((kind, key), 0) + erased(kind, key)
                if profiles <= limit or (kind, key) in asked:
                    getattr(subjects, kind).add(key)
        if (len(subjects.customer_id), len(subjects.email), len(subjects.handle)) == before:
            return found
        found = lake_profiles(lake, subjects)


def _erased_carriers(con: duckdb.DuckDBPyConnection, kind: str, key: str, salt: str) -> int:
    """How many profiles erased before carried `key` (`staging.erased_profile_keys`)."""
    if not _table_exists(con, "staging", "erased_profile_keys"):
        return 0
    row = con.execute(
        load_sql("erasure/count_erased_carriers"),
        {"kind": kind, "hash": _hash_normalized(key, kind, salt)},
    ).fetchone()
    return int(row[0]) if row else 0


def _lake_tables_gone(lake: Path) -> bool:
    """Whether `lake` holds versions but no staged table (an erasure deleted its working
    tables; the next Spark run writes them again)."""
    from engagement_box.spark import lake as spark_lake

    return spark_lake.has_lake(lake) and not any((lake / "tables").glob("staging.*/_current"))


def lake_quarantine_holds(lake: Path, subjects: _Subjects) -> bool | None:
    """Whether the Spark lake's quarantine (raw rows as they came, emails included) holds one
    of the person's keys, matched as the warehouse's own quarantine is (`_delete_quarantined`,
    run on a copy in memory of the four columns it reads): such a lake's working tables are
    deleted by the erasure too. None when its files cannot be read so (a damaged or hand-made
    quarantine): the erasure then deletes the working tables anyway, the side that keeps no
    one. Measured by a review: 300,000 quarantined order rows in about 15 s on a loaded host;
    an erasure is a rare, manual request."""
    folder = _lake_table(lake, "staging.quarantine")
    if folder is None or not any(folder.glob("*.parquet")):
        return False
    found: dict[str, int] = defaultdict(int)
    try:
        with duckdb.connect() as copy:
            copy.execute(load_sql("staging/create_schema"))
            _create_normalize_macros(copy)
            copy.execute(
                load_sql("erasure/lake_quarantine_copy"), {"files": str(folder / "*.parquet")}
            )
            _delete_quarantined(copy, subjects, found, defaultdict(lambda: defaultdict(int)))
    except duckdb.Error:
        return None
    return found["staging.quarantine"] > 0


def lake_holds_ids(lake: Path, ids: list[str]) -> bool:
    """Whether the lake's staged orders, reviews or profiles hold one of the customer ids."""
    if not ids:
        return False
    for table in ("staging.customers", "staging.orders", "staging.reviews"):
        folder = _lake_table(lake, table)
        if folder is None:
            continue
        hits = (
            pl.scan_parquet(folder / "*.parquet")
            .filter(normalized_expr("customer_id", "customer_id").is_in(ids))
            .select(pl.len())
            .collect()
            .item()
        )
        if hits:
            return True
    return False


def lake_key_counts(lake: Path) -> dict[tuple[str, str], int]:
    """How many of the lake's staged profiles carry each email and handle (normalised)."""
    folder = _lake_table(lake, "staging.customers")
    if folder is None:
        return {}
    scan = pl.scan_parquet(folder / "*.parquet")
    names = scan.collect_schema().names()
    profile = normalized_expr("customer_id", "customer_id").alias("profile")
    keyed: list[tuple[str, pl.LazyFrame]] = []
    if "email" in names:
        keyed.append(
            ("email", scan.select(profile, normalized_expr("email", "email").alias("key")))
        )
    if "social_handles" in names:
        listed = pl.col("social_handles").cast(pl.String).str.split(LIST_SEPARATOR)
        keyed.append(
            (
                "handle",
                scan.select(profile, listed)
                .explode("social_handles")
                .select("profile", normalized_expr("social_handles", "handle").alias("key")),
            )
        )
    return {  # distinct profiles: a handle listed twice on one profile counts once
        (kind, key): n
        for kind, frame in keyed
        for key, n in frame.drop_nulls()
        .group_by("key")
        .agg(pl.col("profile").n_unique())
        .collect()
        .iter_rows()
    }


def lake_profiles(lake: Path, subjects: _Subjects) -> pl.DataFrame:
    """The Spark lake's staged customer profiles with one of the subjects' customer ids or
    emails (customer_id, email, social_handles as staged); none without a lake."""
    folder = _lake_table(lake, "staging.customers")
    columns = {"customer_id": pl.String, "email": pl.String, "social_handles": pl.String}
    if folder is None:
        return pl.DataFrame(schema=columns)
    ids, emails = subjects.of("customer_id"), subjects.of("email")
    handles = subjects.of("handle")
    scan = pl.scan_parquet(folder / "*.parquet")
    present = scan.collect_schema().names()
    listed = (
        pl.col("social_handles")
        .str.split(LIST_SEPARATOR)
        .list.eval(normalized_expr("", "handle"))
        .list.set_intersection(pl.lit(handles, dtype=pl.List(pl.String)))
        .list.len()
        > 0
    )
    return (
        scan.select(
            pl.col(c).cast(t) if c in present else pl.lit(None, dtype=t).alias(c)
            for c, t in columns.items()
        )
        .filter(
            normalized_expr("customer_id", "customer_id").is_in(ids)
            | normalized_expr("email", "email").is_in(emails)
            | (listed.fill_null(False) if handles else pl.lit(False))
        )
        .collect()
    )


# The Spark engine's audiences mart (`engagement_box/spark/audiences.py::MART`, which imports
# the Spark engine's SQL: not imported here, where the DuckDB engine's erasures run).
LAKE_AUDIENCES = "audiences"


def lake_audience_ids(lake: Path, emails: list[str]) -> set[str]:
    """The customer ids the lake's published audiences give the person's emails, in every
    retained version: found even when the working tables are gone (an erasure deletes them,
    and the next Spark run keeps the erased person out of them)."""
    files = sorted((Path(lake) / "history" / LAKE_AUDIENCES).glob("*/*.parquet"))
    if not emails or not files:
        return set()
    found = (
        pl.scan_parquet(files)
        .select("customer_id", normalized_expr("email", "email").alias("email"))
        .filter(pl.col("email").is_in(emails))
        .select("customer_id")
        .collect()
        .to_series()
        .drop_nulls()
    )
    return set(found)


def register_profile_keys(working: Path | str) -> tuple[list[tuple[str, str, str]], str]:
    """(profile hash, kind, key hash) of every key erased profiles carried
    (`staging.erased_profile_keys`), from the register of the working database `working`
    (`register_of` writes it first when missing), and the register's salt (which also hashed
    the keys the Spark staging reads from erased profiles); ([], "") without a register."""
    _, salt = register_of(working)
    path = register_path(working)
    if not path.exists():
        return [], ""
    record = json.loads(path.read_text(encoding="utf-8"))
    listed = record.get("erased_profile_keys", [])  # none in a register from before them
    return [(profile, kind, key) for profile, kind, key in listed], salt


def refresh_register(con: duckdb.DuckDBPyConnection) -> bool:
    """Write the register of `con`'s database when its log holds hashes the register does not
    (a warehouse whose people were erased before registers were written, or whose register was
    deleted or left behind when the database was copied). The DuckDB ingest calls it, so such a
    warehouse's register is whole after its next run. True when it wrote one; nothing for a
    database in memory."""
    working = database_path(con)
    if not working:
        return False
    hashes = erased_subject_hashes(con)
    if not hashes:
        return False
    path = register_path(working)
    record = _readable_register(path)
    if record is not None and hashes <= set(record.get("subject_hashes") or []):
        return False
    write_register(con, path)
    return True


def adopt_register(con: duckdb.DuckDBPyConnection, *, none_staged: bool = False) -> int:
    """Take into `con`'s erasure log the erasures its register lists and the log does not: a
    working database started anew (damaged, lost) with the register kept beside it. The DuckDB
    ingest calls it first, so the people erased from the old warehouse stay out of every export
    read again. Returns how many subject hashes were taken in (0: none missing, no register, a
    database in memory).

    A database that already holds staged rows and misses erasures (a backup from before them, or
    another warehouse's register) may hold those people: `ErasureError`, saying how to start
    anew, since its rows cannot be matched to hashes without their keys."""
    working = database_path(con)
    if not working:
        return 0
    path = register_path(working)
    record = _readable_register(path)
    if record is None:
        return 0
    missing = set(record.get("subject_hashes") or []) - erased_subject_hashes(con)
    if not missing:
        return 0
    check_salt(con)  # a register hashed with a salt given then and not now: say so first
    staged = any(_table_exists(con, "staging", n) and _has_rows(con, n) for n in SOURCES)
    if staged and not none_staged:
        # A backup restored beside today's register, say: its staged rows may hold those
        # people, who must be erased again whole (every table, version and audience file)
        # before anything is staged: `erase --from-register` looks for them (by the salted
        # hashes: 23 CPU-s at 1M customers, too long for every staging step to repeat) and
        # erases them, then takes the rest in (`none_staged`).
        raise ErasureError(
            f"{_lacking(path, working, len(missing))}; its staged rows may hold them: nothing "
            "was staged. Run again once that is done"
        )
    ensure_erasure_tables(con)
    stored = record.get("salt")
    if (
        stored
        and not os.environ.get(SALT_ENV)
        and not _table_exists(con, "staging", "erasure_salt")
    ):
        _store_salt(con, stored)
    with transaction(con):
        con.execute(
            load_sql("erasure/insert_erasure_log"),
            {
                "request_id": f"register-{uuid.uuid4().hex}",
                "subject_hashes": sorted(missing),
                "requested_at": utc_now(),
                "rows_deleted": json.dumps({"taken from the register": str(path)}),
                "salt_fingerprint": record["salt_fingerprint"],
            },
        )
        keys = record.get("erased_profile_keys") or []
        _insert_profile_keys(
            con, pl.DataFrame(keys, schema=["profile_hash", "kind", "key_hash"], orient="row")
        )
    return len(missing)


def register_problem(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the register beside `con`'s database keeps runs and audience files waiting, or None:
    it lists erasures the database's log lacks (a backup restored beside today's register), or
    it cannot be read. Cheap (the register's JSON and the log), so a run with nothing new asks
    it before deciding that a version stands, and the audience steps before writing files: a
    backup restored beside today's register said "nothing to do" and wrote the people erased
    since back into the audience files; a register cut short counted as none (reviews)."""
    working = database_path(con)
    if not working:
        return None
    path = register_path(working)
    try:
        record = _readable_register(path)
    except ErasureError as error:
        return str(error)
    if record is None:
        return None
    lacking = len(set(record.get("subject_hashes") or []) - erased_subject_hashes(con))
    return _lacking(path, working, lacking) if lacking else None


def _lacking(path: Path, working: str, lacking: int) -> str:
    """What is said of a register listing `lacking` hashes the working database's log lacks."""
    return (
        f"{path} lists {lacking} {'key' if lacking == 1 else 'keys'} of erased people (ids, "
        f"emails, handles) that {working} has not erased (a backup from before those erasures "
        "restored?): erase them again with `engagement-box erase --from-register` (their keys "
        "are not printed)"
    )


def _unreadable_register(path: Path) -> str:
    return (
        f"{path}: the register of erased people cannot be read (cut short, or changed by hand?): "
        "put back the newest good copy (it only grows), or delete it to have it written again "
        "from the working database's log, which forgets anyone erased after that database's "
        "last erasure"
    )


def register_requests(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The erasure requests that would erase again the people `con`'s register lists and its
    log lacks, as found in its staged rows: (kind, key) pairs, kind `customer_id`, `email` or
    `handle`, each key as staged. A key is taken from the column it matched in (a referral
    matched by its referee's email is the referee's, not the referrer's); a profile matched by
    one of its handles is erased by its customer id. Empty when the register lists nothing the
    log lacks. ErasureError when the register cannot be read, or was hashed with another salt
    (its hashes cannot be matched)."""
    working = database_path(con)
    path = register_path(working) if working else None
    record = _readable_register(path) if path else None
    if record is None:
        return []
    missing = set(record.get("subject_hashes") or []) - erased_subject_hashes(con)
    if not missing:
        return []
    salt = record.get("salt") or resolve_salt(con)
    if salt_fingerprint(salt) != record.get("salt_fingerprint"):
        raise ErasureError(
            f"{path} was hashed with another salt than {working}'s: its erasures cannot be "
            f"looked for in the staged rows (set {SALT_ENV} to the salt it was written with)"
        )
    found: set[tuple[str, str]] = set()
    for source, columns in SUBJECT_COLUMNS.items():
        lists = SOURCES[source].lists
        if not (columns or lists) or not _table_exists(con, "staging", source):
            continue
        names = [*columns, *lists]
        if lists and "customer_id" not in names:
            names.append("customer_id")
        staged = con.execute(
            load_sql(
                "erasure/staged_subject_columns",
                table=source,
                columns=",".join(names),
            )
        ).pl()
        for column, kind in columns.items():
            one = staged.select(column)
            hit = suppression_mask(one, source, missing, salt)
            found |= {(kind, v) for v in one[column].filter(hit).drop_nulls().unique()}
        for column in lists:
            hit = suppression_mask(staged.select(column), source, missing, salt)
            ids = staged["customer_id"].filter(hit).drop_nulls().unique()
            found |= {("customer_id", v) for v in ids}
    # A person in a retained version only (their staged rows withdrawn since it was published,
    # a review): the versions' customer ids are looked through too.
    for (table,) in con.execute(load_sql("erasure/versioned_customer_tables")).fetchall():
        versioned = con.execute(load_sql("erasure/versioned_customer_ids", table=table)).pl()
        hit = suppression_mask(versioned, "orders", missing, salt)
        found |= {("customer_id", v) for v in versioned["customer_id"].filter(hit).drop_nulls()}
    # one request per key as the erasure normalises it (`Jane@X.com` and `jane@x.com` are one)
    once = {(kind, normalize(key, kind)): (kind, key) for kind, key in sorted(found)}
    return sorted(once.values())


def _has_rows(con: duckdb.DuckDBPyConnection, source: str) -> bool:
    return bool(con.execute(load_sql("erasure/any_staged_row", table=source)).fetchone())


def register_of(working: Path | str) -> tuple[frozenset[str], str]:
    """`read_register` of the working database `working`'s register. When there is none but the
    database exists, its log is read (opened read-only) and the register written from it first:
    erasures logged before registers existed must keep the Spark engine's ingest from bringing
    those people back. ErasureError when the database cannot be opened for that (a DuckDB run
    holds it): the Spark run must not go on without knowing who was erased."""
    working = Path(working)
    path = register_path(working)
    if not path.exists() and working.exists():
        try:
            con = duckdb.connect(str(working), read_only=True)
        except duckdb.Error as error:
            raise ErasureError(
                f"{working}: the people erased from this warehouse are listed in {path}, which "
                f"does not exist yet, and the database cannot be read to write it ({error}). "
                "Start the Spark run again when the DuckDB run that holds it has finished."
            ) from error
        try:
            if erased_subject_hashes(con):
                write_register(con, path)
        finally:
            con.close()
    return read_register(path)


def read_register(path: Path | str) -> tuple[frozenset[str], str]:
    """(subject hashes, salt) of the register at `path`; (empty, "") when there is none. The salt
    is ENGAGEMENT_ERASURE_SALT when set, else the stored one; SaltMismatch when it did not make
    the hashes (they could never match, and erased people would come back)."""
    path = Path(path)
    if not path.exists():
        return frozenset(), ""
    record = json.loads(path.read_text(encoding="utf-8"))
    hashes = frozenset(record["subject_hashes"])
    salt = os.environ.get(SALT_ENV) or record.get("salt") or ""
    if hashes and salt_fingerprint(salt) != record["salt_fingerprint"]:
        raise SaltMismatch(
            f"{path}: the erased people's hashes were made with another salt; set {SALT_ENV} to "
            "the salt used for them"
        )
    return hashes, salt


# ----------------------------------------------------------------------------------------------
# The Spark engine's lake


def erase_from_lake(lake: Path, subjects: _Subjects, found: bool = True) -> dict[str, int]:
    """Rows removed per mart from every retained version of the lake's marts (none when `lake`
    holds no published version). The customer ids are the subjects' (`erase` adds those of the
    lake's staged profiles, guest orders and audiences). The lake's working tables, which hold
    the staged rows, are deleted when the person was found in the lake (`found`: in its
    staged tables, quarantine or versions; every Spark run rebuilds them); kept otherwise, so
    a later erasure by email or handle can still find people in them. The export files'
    validated rows (`tables/_validated`, `spark/staging.py::ValidatedFiles`) are deleted by
    every erasure: their lookup does not reach them, and the register this erasure changes
    names them, so no later staging would take them again."""
    from engagement_box.spark import lake as spark_lake
    from engagement_box.spark.staging import VALIDATED_DIR

    removed = (
        spark_lake.erase_customers(lake, subjects.of("customer_id"))
        if spark_lake.has_lake(lake)
        else {}
    )
    tables = lake / "tables"
    if (removed or found) and tables.is_dir():
        aside = lake / f".erased-tables-{uuid.uuid4().hex}"
        os.rename(tables, aside)
        shutil.rmtree(aside)
    validated = tables / VALIDATED_DIR
    if validated.is_dir():
        aside = lake / f".erased-validated-{uuid.uuid4().hex}"
        os.rename(validated, aside)
        shutil.rmtree(aside)
    return removed


# ----------------------------------------------------------------------------------------------
# Audience files


def _unneutralised(column: str) -> pl.Expr:
    """The value as it was before `neutralize_formulas` added its quote."""
    col = pl.col(column).cast(pl.String)
    return pl.when(col.str.contains(_NEUTRALISED)).then(col.str.slice(1)).otherwise(col)


def _audience_mask(
    frame: pl.DataFrame,
    ids: list[str],
    emails: list[str],
    csv: bool,
    hashes: set[str] = frozenset(),
    salt: str = "",
) -> pl.Series:
    """The rows of these ids or emails, or of any erased person (`hashes`, made with `salt`)."""
    checks = []
    for column, kind, values in (("customer_id", "customer_id", ids), ("email", "email", emails)):
        if column not in frame.columns or not (values or hashes):
            continue
        raw = _unneutralised(column) if csv else pl.col(column).cast(pl.String)
        key = frame.select(raw.alias(column)).select(normalized_expr(column, kind)).to_series()
        erased = [v for v in key.drop_nulls().unique() if _hash_normalized(v, kind, salt) in hashes]
        checks.append(key.is_in([*values, *erased]).fill_null(False))
    mask = pl.Series("erased", [False] * frame.height, dtype=pl.Boolean)
    for check in checks:
        mask = mask | check
    return mask


def erase_from_audiences(
    audience_dir: Path,
    ids: list[str],
    emails: list[str],
    hashes: set[str] = frozenset(),
    salt: str = "",
    passed: dict[str, str] | None = None,
) -> dict[str, int]:
    """Rewrite every audience file under `audience_dir` without rows of these ids or emails,
    nor of anyone erased before (`hashes`: every logged request's, made with `salt`), and
    delete what an export killed midway left there. An erasure killed after its commit left
    the person in the files, and the same request again no longer found their ids and emails
    (their profiles were gone): it said no row matched. The logged hashes find them.

    CSV files are read as text and written back through `audiences.neutralize_formulas` (cells
    already neutralised start with a quote and are left as they are), Parquet files keep their
    types. Each file is replaced atomically. Returns rows removed per file (relative path).
    A link in the folders (a kind's folder, a subfolder, a file) is not followed: the run writes
    real folders and files, and a link to files elsewhere had erasure rewrite files that were
    not the run's (a security review); each is added to `passed` with what it links to.
    """
    removed: dict[str, int] = {}
    # What an export or an erasure killed midway left: a kind's folder being built or being
    # replaced (`.<kind>.building`, `.<kind>.old`, which the next export deletes), a file being
    # rewritten. Erasure holds the run lock, so no export is writing them; they go whole (the
    # person was in them: review of 2026-12-04).
    for kind in AUDIENCE_KINDS:
        folder, old = Path(audience_dir) / kind, Path(audience_dir) / f".{kind}.old"
        if old.is_dir() and not folder.exists():  # killed between the two renames of a swap:
            os.replace(old, folder)  # the kind's files are the old ones, rewritten below
        for leftover in (f".{kind}.building", f".{kind}.old"):
            remove_leftover(Path(audience_dir) / leftover)
        for partial in (Path(audience_dir) / kind).glob(".*.erasure-tmp"):
            partial.unlink(missing_ok=True)
    # The run's own files only (`audiences.AUDIENCE_KINDS`): other files in a shared folder are
    # not ours to rewrite.
    ours = [Path(audience_dir) / kind for kind in AUDIENCE_KINDS]
    files, links = [], []
    for folder in ours:
        if folder.is_symlink():
            links.append(folder)
            continue
        for root, dirs, names in os.walk(folder):  # links to folders are listed, not walked
            for name in (*dirs, *names):
                path = Path(root) / name
                if path.is_symlink():
                    links.append(path)
                elif path.is_file():
                    files.append(path)
    if passed is not None:
        passed.update(
            (
                str(link),
                f"a link to {os.readlink(link)}: the run writes real folders and files there, "
                "so erasure does not follow links; look there yourself",
            )
            for link in links
        )
    for path in sorted(files):
        relative = path.relative_to(audience_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False, raise_if_empty=False, glob=False)
        elif suffix == ".parquet":
            frame = pl.read_parquet(path, glob=False)
        else:
            continue
        mask = _audience_mask(frame, ids, emails, suffix == ".csv", hashes, salt)
        count = int(mask.sum())
        if not count:
            continue
        kept = frame.filter(~mask)
        partial = path.with_name(f".{path.name}.erasure-tmp")
        if suffix == ".csv":
            neutralize_formulas(kept).write_csv(partial)
        else:
            kept.write_parquet(partial)
        os.replace(partial, path)
        removed[relative.as_posix()] = count
    if removed:
        record_rewritten(Path(audience_dir))
    return removed


# ----------------------------------------------------------------------------------------------
# Compaction


def compact(database: Path | str) -> Path:
    """Copy the live data of a warehouse file into a fresh file and put it in the old one's place,
    so the freed blocks of erased rows are gone from the file (not from backups or the disk's
    free space). No other connection may have the file open. Returns the path.

    Uses `COPY FROM DATABASE` (tables, views, macros, constraints). ATTACH takes no bound
    parameters, so the two paths are written into the statement as string literals
    (`quote_literal`, its quotes doubled); they come from the caller's configuration, never
    from data.
    """
    database = Path(database).resolve()
    if not database.is_file():
        raise FileNotFoundError(database)
    fresh = database.with_name(database.name + ".compacting")
    wal = database.with_name(database.name + ".wal")
    if wal.exists():
        raise ErasureError(
            f"{database.name} has a write-ahead log: open it once and close it (or CHECKPOINT) "
            "with no other connection, then compact"
        )
    if fresh.exists():
        fresh.unlink()
    con = duckdb.connect()
    try:
        # ATTACH binds no parameter: the paths (quotes refused above) as literals
        con.execute(f"ATTACH {quote_literal(str(database))} AS erasure_old (READ_ONLY)")
        con.execute(f"ATTACH {quote_literal(str(fresh))} AS erasure_new")
        con.execute("COPY FROM DATABASE erasure_old TO erasure_new")
        con.execute("DETACH erasure_new")
        con.execute("DETACH erasure_old")
    except BaseException:
        con.close()
        fresh.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(fresh, database)
    return database
