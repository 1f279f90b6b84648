"""Nothing is lost: per source, rows read = rows staged + rows quarantined + rows erased.

The one definition of the reconciliation, read from the tables (`sql/staging/reconciliation.sql`).
The ingest checks it inside its transaction, the staging assets report it as the blocking check
`rows_reconcile`, and erasure checks it after deleting a person's rows. No Dagster import here.
"""

from typing import NamedTuple

import duckdb

from engagement_box.sql import load_sql
from engagement_box.staging.contracts import SOURCES


class Reconciliation(NamedTuple):
    """Files taken in, rows read, staged, quarantined and erased for one source."""

    files: int
    rows_read: int
    rows_staged: int
    rows_quarantined: int
    rows_erased: int

    @property
    def holds(self) -> bool:
        """True when every row read is staged, quarantined or erased."""
        return self.rows_read == self.rows_staged + self.rows_quarantined + self.rows_erased


def reconcile(con: duckdb.DuckDBPyConnection, source_name: str) -> Reconciliation:
    """The reconciliation of `source_name` (a contract source) from the tables. Needs
    `staging.erased_rows` (`engagement_box.governance.erasure.ensure_erasure_tables`)."""
    if source_name not in SOURCES:
        raise KeyError(f"{source_name!r} is not an export source: {sorted(SOURCES)}")
    row = con.execute(
        load_sql("staging/reconciliation", table=source_name), {"source": source_name}
    ).fetchone()
    assert row is not None  # an aggregate query always returns one row
    return Reconciliation(*(int(v) for v in row))
