"""Which columns hold personal data, so nothing personal leaves the warehouse by accident.

Dagster keeps every materialization's metadata in its own run storage, which erasure does not
reach: previews shown in the UI therefore mask these columns. A column is personal when its name
says it holds an email, a name or a social handle, or when it carries raw or normalised
identifiers (`staging.quarantine.raw_values`, `intermediate.identity_links.normalized_value`).
Customer ids are pseudonymous keys and stay visible. No Dagster import here.
"""

import re

import polars as pl

_PERSONAL = re.compile(r"email|handle|(^|_)name$|first_name|last_name|phone|address")
_PERSONAL_EXACT = frozenset({"raw_values", "normalized_value"})
MASK = "***"


def is_personal(column: str) -> bool:
    name = column.lower()
    return name in _PERSONAL_EXACT or bool(_PERSONAL.search(name))


def personal_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if is_personal(c)]


def masked(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every personal column's non-null values replaced by a mask."""
    return frame.with_columns(
        pl.when(pl.col(c).is_null()).then(None).otherwise(pl.lit(MASK)).alias(c)
        for c in personal_columns(frame.columns)
    )
