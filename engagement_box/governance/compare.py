"""The current version's marts in a form two warehouses can be compared by.

A run killed and run again, a rerun or a stress loop must leave the same numbers as an undisturbed
run: `current_marts(a) == current_marts(b)` says so. Used by tests/test_safe_operations.py and
benchmarks/stress_kills.py.
"""

import json
import math
from pathlib import Path

import duckdb

from engagement_box.sql import load_sql, quote_identifier, sql_template

# The marts compared, and the columns left out: a fit's time and clock are not results, and its
# correlations are compared to 12 digits below.
COMPARED_MARTS = {
    "customer_rfm": "",
    "customer_value": "",
    "model_fit": " EXCLUDE (fit_seconds, fitted_at, frequency_spend_correlation)",
    "model_validation": "",
    "engagement_value": "",
    "customer_persona": "",
    "persona_profile": "",
    # the mart analysts start from, and the cohorts (they were not compared; a review)
    "customer": "",
    "cohort_retention": "",
}


def current_marts(database: Path) -> dict[str, list[tuple]]:
    """Every compared mart's rows of the current version (sorted), read-only."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        found = {
            table: con.execute(
                sql_template("marts/compared_rows").format(
                    exclude=exclude, mart=quote_identifier(table)
                )
            ).fetchall()
            for table, exclude in COMPARED_MARTS.items()
        }
        # DuckDB's parallel corr() may differ in the last bit from run to run: 12 digits.
        found["model_fit correlations"] = [
            (model, window, {k: round(v, 12) for k, v in json.loads(correlations).items()})
            for model, window, correlations in con.execute(
                load_sql("marts/model_fit_correlations")
            ).fetchall()
        ]
        return found
    finally:
        con.close()


def differences(
    found: dict[str, list[tuple]],
    expected: dict[str, list[tuple]],
    columns: dict[str, list[str]] | None = None,
    rel: float = 1e-9,
) -> list[str]:
    """Where two `current_marts` differ beyond `rel` (relative, on floats; two identical runs
    differ in the last bit in a few sums), one line per mart and column: rows, the largest
    relative difference. Empty when they agree."""
    said = []
    for mart in sorted(found.keys() | expected.keys()):
        rows, wanted = found.get(mart, []), expected.get(mart, [])
        if len(rows) != len(wanted):
            said.append(f"{mart}: {len(rows)} rows against {len(wanted)}")
            continue
        names = (columns or {}).get(mart, [])
        by_column: dict[int, list[float]] = {}
        for got, want in zip(rows, wanted, strict=True):
            for i, (u, v) in enumerate(zip(got, want, strict=True)):
                if u == v:
                    continue
                if isinstance(u, float) and isinstance(v, float):
                    if math.isclose(u, v, rel_tol=rel, abs_tol=1e-12):
                        continue
                    gap = abs(u - v) / max(abs(u), abs(v))
                else:
                    gap = math.inf
                by_column.setdefault(i, []).append(gap)
        for i, gaps in sorted(by_column.items()):
            name = names[i] if i < len(names) else f"column {i + 1}"
            said.append(f"{mart}.{name}: {len(gaps)} rows differ, at most {max(gaps):.2g} relative")
    return said


def mart_columns(database: Path) -> dict[str, list[str]]:
    """The column names of each compared mart's rows in `current_marts`."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        return {
            table: [
                d[0]
                for d in con.execute(
                    sql_template("marts/compared_columns").format(
                        exclude=exclude, mart=quote_identifier(table)
                    )
                ).description
            ]
            for table, exclude in COMPARED_MARTS.items()
        }
    finally:
        con.close()
