"""Resources: where the exports are, and the warehouse they go into."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines import settings


class ExportsResource(dg.ConfigurableResource):
    """The folder of raw exports: `<data_dir>/<source>/*.csv|*.parquet`."""

    data_dir: str

    @property
    def path(self) -> Path:
        return Path(self.data_dir)


def warehouse_resource(database: str | Path | None = None) -> DuckDBResource:
    """The DuckDB warehouse; its folder is created so a fresh checkout runs."""
    path = Path(database or settings.warehouse_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBResource(database=str(path))


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": warehouse_resource(),
        "exports": ExportsResource(data_dir=str(settings.data_dir())),
    }
