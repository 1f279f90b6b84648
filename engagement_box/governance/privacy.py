"""Which columns hold personal data, so nothing personal leaves the warehouse by accident.

Dagster keeps every materialization's metadata in its own run storage, which erasure does not
reach: previews shown in the UI therefore mask these columns. A column is personal when its name
says it holds an email, a name or a social handle, or when it carries raw or normalised
identifiers (`staging.quarantine.raw_values`, `intermediate.identity_links.normalized_value`).
Customer ids are pseudonymous keys and stay visible. Error and warning messages that quote an
export's text (a refused line) go to the console and to Dagster's run logs too: `masked_text`
masks the emails and handles inside such a text. No Dagster import here.
"""

import json
import re

import polars as pl

_PERSONAL = re.compile(r"email|handle|(^|_)name$|first_name|last_name|phone|address")
_PERSONAL_EXACT = frozenset({"raw_values", "normalized_value"})
MASK = "***"
# Characters that end a word of free text: a CSV line's separators and quotes, brackets, spaces.
_BOUNDARY = r"\s,;\"'`<>()\[\]{}|"
# An email (any word with an `@` inside, a malformed one too: `jane@example`, `mary.smith@`),
# or a handle (`@` starting a word). One pattern, so a masked email's `@` is never read again
# as a handle's.
_EMAIL_OR_HANDLE = re.compile(
    rf"(?P<local>[^{_BOUNDARY}@]+)@(?P<domain>[^{_BOUNDARY}@]*)"
    rf"|(?<![^{_BOUNDARY}@])(?P<at>@+)(?P<handle>[^{_BOUNDARY}@]+)"
)


def is_personal(column: str) -> bool:
    name = column.lower()
    return name in _PERSONAL_EXACT or bool(_PERSONAL.search(name))


def masked_text(text: str) -> str:
    """`text` with every email address and @handle in it masked, keeping what helps a reader
    find the value without saying whose it is: an email's first letter and its domain
    (`j***@gmail.com`), a handle's first letter (`@j***`), and everything else as written.
    For free text quoted in a message (a line of an export file): a column's values are
    masked whole by `masked`. A handle written without its `@` cannot be told from other words
    and stays as written."""

    def mask(found: re.Match) -> str:
        if found["local"] is not None:
            return f"{found['local'][0]}{MASK}@{found['domain']}"
        return f"{found['at']}{found['handle'][0]}{MASK}"

    return _EMAIL_OR_HANDLE.sub(mask, text)


def masked_json(text: str | None) -> str | None:
    """A JSON object's text (a quarantined row's raw values) with every email and @handle in
    its string values masked as `masked_text` masks them. Masked value by value, after
    decoding: masking the JSON text itself broke the JSON where a value held an escaped quote
    or a tab (the escape's backslash was taken into the mask)."""
    if text is None or "@" not in text:
        return text
    values = json.loads(text)
    if not isinstance(values, dict):
        return text
    masked = {k: masked_text(v) if isinstance(v, str) else v for k, v in values.items()}
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":"))


def personal_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if is_personal(c)]


def masked(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every personal column's non-null values replaced by a mask."""
    return frame.with_columns(
        pl.when(pl.col(c).is_null()).then(None).otherwise(pl.lit(MASK)).alias(c)
        for c in personal_columns(frame.columns)
    )
