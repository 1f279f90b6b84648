"""Settings read from the environment, with defaults that work on the bundled sample.

Every setting is documented in README.md ("Settings"). No Dagster import here.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA_DIR = REPO_ROOT / "data" / "sample"
DEFAULT_WAREHOUSE = REPO_ROOT / "data" / "warehouse" / "engagement.duckdb"
DEFAULT_AUDIENCE_DIR = REPO_ROOT / "data" / "audiences"


def data_dir() -> Path:
    """ENGAGEMENT_DATA_DIR: the folder with one subfolder per export source."""
    return Path(os.environ.get("ENGAGEMENT_DATA_DIR") or SAMPLE_DATA_DIR)


def warehouse_path() -> Path:
    """ENGAGEMENT_WAREHOUSE: the DuckDB file analysts open."""
    return Path(os.environ.get("ENGAGEMENT_WAREHOUSE") or DEFAULT_WAREHOUSE)


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default
