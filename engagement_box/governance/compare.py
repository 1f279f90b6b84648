"""The current version's marts in a form two warehouses can be compared by.

A run killed and run again, a rerun or a stress loop must leave the same numbers as an undisturbed
run: `current_marts(a) == current_marts(b)` says so. Used by tests/test_safe_operations.py and
benchmarks/stress_kills.py.
"""

import json
from pathlib import Path

import duckdb

from engagement_box.sql import quote_identifier

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
}


def current_marts(database: Path) -> dict[str, list[tuple]]:
    """Every compared mart's rows of the current version (sorted), read-only."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        found = {
            table: con.execute(
                f"SELECT *{exclude} FROM marts.{quote_identifier(table)} ORDER BY ALL"
            ).fetchall()
            for table, exclude in COMPARED_MARTS.items()
        }
        # DuckDB's parallel corr() may differ in the last bit from run to run: 12 digits.
        found["model_fit correlations"] = [
            (model, window, {k: round(v, 12) for k, v in json.loads(correlations).items()})
            for model, window, correlations in con.execute(
                'SELECT model, "window", frequency_spend_correlation FROM marts.model_fit '
                "ORDER BY ALL"
            ).fetchall()
        ]
        return found
    finally:
        con.close()
