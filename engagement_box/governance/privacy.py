"""Which columns hold personal data, so nothing personal leaves the warehouse by accident.

Dagster keeps every materialization's metadata in its own run storage, which erasure does not
reach: previews shown in the UI therefore mask these columns. A column is personal when its name
says it holds an email, a name or a social handle, or when it carries raw or normalised
identifiers (`staging.quarantine.raw_values`, `intermediate.identity_links.normalized_value`).
Customer ids are pseudonymous keys and stay visible. Error and warning messages that quote an
export's text (a refused line) go to the console and to Dagster's run logs too: `masked_text`
masks the emails and handles inside such a text. No Dagster import here.
"""

import functools
import json
import re

import polars as pl

_PERSONAL = re.compile(r"email|handle|(^|_)name$|first_name|last_name|phone|address")
_PERSONAL_EXACT = frozenset({"raw_values", "normalized_value"})
MASK = "***"
# Characters that end a word of free text: a CSV line's separators and quotes, brackets, spaces.
_BOUNDARY = r"\s,;\"'`<>()\[\]{}|"
# An email (any word with an `@` inside, a malformed one too: `jane@example`, `mary.smith@`,
# `x@y@JaneDoe`: the domain runs to the word's end), or a handle (`@` starting a word, to the
# word's end: `@jane@JaneDoe`). One pattern, so a masked email's `@` is never read again as a
# handle's. Each match starts where a word starts and its parts never give back what they took
# (possessive): tried at every letter of a word, a 50,000-letter word took 10-17 s.
_EMAIL_OR_HANDLE = re.compile(
    rf"(?<![^{_BOUNDARY}])(?P<local>[^{_BOUNDARY}@]++)@(?P<domain>[^{_BOUNDARY}]*+)"
    rf"|(?<![^{_BOUNDARY}])(?P<at>@++)(?P<handle>[^{_BOUNDARY}@][^{_BOUNDARY}]*+)"
)


@functools.cache  # asked per value of every quarantined row: a handful of column names
def is_personal(column: str) -> bool:
    name = column.lower()
    return name in _PERSONAL_EXACT or bool(_PERSONAL.search(name))


def masked_text(text: str) -> str:
    """`text` with every email address and @handle in it masked, keeping what helps a reader
    find the value without saying whose it is: an email's first letter and its domain
    (`j***@gmail.com`; a "domain" without a dot, or with another `@`, is masked too), a handle's
    first letter (`@j***`), and everything else as written.
    For free text quoted in a message (a line of an export file): a column's values are
    masked whole by `masked`. A handle written without its `@` cannot be told from other words
    and stays as written."""

    def mask(found: re.Match) -> str:
        if found["local"] is not None:
            # A domain is kept (`gmail.com`); what follows a second `@`, or a word without a dot
            # (a handle after punctuation: `RT:@JaneDoe`, `x.com/@JaneDoe`), is no domain.
            domain = found["domain"]
            if "@" in domain:
                domain = MASK
            elif domain and "." not in domain:
                domain = domain[0] + MASK
            return f"{found['local'][0]}{MASK}@{domain}"
        return f"{found['at']}{found['handle'][0]}{MASK}"

    return _EMAIL_OR_HANDLE.sub(mask, text)


# A word of a personal field: between spaces, the separators of a list or an address (`;`, `,`,
# `<>`), brackets, quotes and `|` (`"Jane Doe"<jane@x.com>`, `Jane_Doe|jane@x.com`).
_WORD = re.compile(rf"[^{_BOUNDARY}]+")


def masked_value(value: str) -> str:
    """A personal field's value (an email, a handle, a list of them, a name beside them) masked
    whole, word by word: `masked_text` for a word with an `@`, else its first letter (`c***`: a
    handle may be written without its `@`, and `Jane Doe <jane@x.com>` names her twice)."""
    return _WORD.sub(
        lambda word: masked_text(word[0]) if "@" in word[0] else word[0][:1] + MASK, value
    )


def masked_json(text: str | None) -> str | None:
    """A JSON object's text (a quarantined row's raw values) with its personal fields
    (`is_personal`: emails, handles) masked whole (`masked_value`) and every email and @handle in
    its other values masked (`masked_text`). Masked value by value, after decoding: masking the
    JSON text itself broke the JSON where a value held an escaped quote or a tab."""
    if text is None:
        return text
    values = json.loads(text)
    if not isinstance(values, dict):
        return text
    masked = {k: _masked_any(k, v) for k, v in values.items()}
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":"))


def _masked_any(key: str, value: object) -> object:
    """A decoded JSON value masked as the field `key` (lists and objects inside, recursively)."""
    if isinstance(value, str):
        return _masked_field(key, value) if value else value
    if isinstance(value, list):
        return [_masked_any(key, v) for v in value]
    if isinstance(value, dict):
        return {k: _masked_any(k if not is_personal(key) else key, v) for k, v in value.items()}
    return value


def _masked_field(key: str, value: str) -> str:
    if is_personal(key):
        return masked_value(value)
    return masked_text(value) if "@" in value else value  # no `@`: nothing to mask


# A quarantine detail that quotes what a rule refused: the rule first (a name, with its
# arguments: a pattern, which holds `@` and is no one's), then `: ` and the value, or the whole
# row as JSON for a rule on the row; or the value in backticks.
_RULE_THEN_VALUE = re.compile(r"^(?P<rule>\w+(?:\(.*?\))?): (?P<value>.*)$", re.S)
# The value a detail quotes, from its first backtick to its last (a value may hold backticks).
_QUOTED = re.compile(r"`(?P<value>.*)`", re.S)


def masked_detail(detail: str | None, column: str | None) -> str | None:
    """A quarantine row's detail with what it quotes masked: a row (JSON) as `masked_json`
    masks it, a value whole (`masked_value`) when the column is personal, else its emails and
    @handles; the rule's text (a regular expression with `@` in it) stays readable."""
    if not detail:
        return detail
    personal = column is not None and is_personal(column)
    mask = masked_value if personal else masked_text
    found = _RULE_THEN_VALUE.match(detail)
    if detail == "not_nullable: null":  # a missing value: `null` quotes nothing (it read `n***`)
        return detail
    if found:
        value = found["value"]
        # A row's JSON (a row rule's detail, or JSON in a column that is no one's) is masked
        # entry by entry; in a personal column a value that is JSON is still that person's
        # value, masked whole.
        if not personal and value.startswith("{"):
            try:
                return f"{found['rule']}: {masked_json(value)}"
            except (ValueError, RecursionError):
                pass  # not JSON after all (or too deep to decode): masked as text
        return f"{found['rule']}: {mask(value)}"
    if personal:
        detail = _QUOTED.sub(lambda m: f"`{masked_value(m['value'])}`", detail)
    return masked_text(detail)


def personal_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if is_personal(c)]


def masked(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every personal column's non-null values replaced by a mask."""
    return frame.with_columns(
        pl.when(pl.col(c).is_null()).then(None).otherwise(pl.lit(MASK)).alias(c)
        for c in personal_columns(frame.columns)
    )
