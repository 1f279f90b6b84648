"""ENGAGEMENT_ENGINE picks the code location's graph: DuckDB by default, the Spark assets with
`spark`. Loaded in a fresh interpreter (the setting is read when the code location loads)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHOW = (
    "import json; from pipelines.definitions import defs; "
    "g = defs.resolve_asset_graph(); "
    "print(json.dumps({'assets': sorted(k.to_user_string() for k in g.get_all_asset_keys()), "
    "'jobs': sorted(j.name for j in defs.resolve_all_job_defs())}))"
)


def load(engine: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ENGAGEMENT_ENGINE"}
    if engine is not None:
        env["ENGAGEMENT_ENGINE"] = engine
    out = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_spark_engine_has_its_own_assets_and_job_and_duckdb_stays_the_default():
    spark = load("spark")
    assert spark["assets"] == [
        "spark/audiences",
        "spark/engagement_marts",
        "spark/identity_links",
        "spark/marts",
        "spark/published_marts",
        "spark/staging",
    ]
    assert "spark_pipeline" in spark["jobs"]
    default = load(None)
    assert "marts/customer" in default["assets"] and "spark/staging" not in default["assets"]
    assert "engagement_pipeline" in default["jobs"]


def test_an_unknown_engine_is_refused_by_name():
    env = {**os.environ, "ENGAGEMENT_ENGINE": "hadoop"}
    out = subprocess.run(
        [sys.executable, "-c", "import pipelines.definitions"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "ENGAGEMENT_ENGINE='hadoop' is not valid: choose duckdb or spark" in out.stderr


@pytest.mark.parametrize("engine", ["spark", "SPARK "])
def test_the_setting_is_read_case_blind(engine):
    from engagement_box import settings

    assert settings.value("ENGAGEMENT_ENGINE", {"ENGAGEMENT_ENGINE": engine}) == "spark"
