"""ENGAGEMENT_ENGINE picks the code location's graph: DuckDB by default, the Spark assets with
`spark`. The setting is read when the code location loads: one fresh interpreter loads it with
each value in turn (each load runs the module again; an interpreter start and Dagster's imports
cost about 2 CPU-s, so not one per value)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOAD_EACH = """
import importlib, json, os, sys
for engine in ("", "spark", "hadoop"):
    os.environ.pop("ENGAGEMENT_ENGINE", None)
    if engine:
        os.environ["ENGAGEMENT_ENGINE"] = engine
    try:
        module = sys.modules.get("pipelines.definitions")
        if module is None:
            module = importlib.import_module("pipelines.definitions")
        else:
            module = importlib.reload(module)
    except Exception as error:
        print(json.dumps({"engine": engine, "error": str(error)}))
        continue
    defs = module.defs
    g = defs.resolve_asset_graph()
    print(json.dumps({
        "engine": engine,
        "assets": sorted(k.to_user_string() for k in g.get_all_asset_keys()),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs()),
    }))
"""


@pytest.fixture(scope="module")
def loaded() -> dict:
    """{engine setting ("" when unset): what the code location held, or its error}."""
    env = {k: v for k, v in os.environ.items() if k != "ENGAGEMENT_ENGINE"}
    out = subprocess.run(
        [sys.executable, "-c", LOAD_EACH], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {row.pop("engine"): row for row in rows}


def test_the_spark_engine_has_its_own_assets_and_job_and_duckdb_stays_the_default(loaded):
    spark = loaded["spark"]
    assert spark["assets"] == [
        "spark/audiences",
        "spark/engagement_marts",
        "spark/identity_links",
        "spark/marts",
        "spark/published_marts",
        "spark/staging",
        "spark/version_inputs",
    ]
    assert "spark_pipeline" in spark["jobs"]
    default = loaded[""]
    assert "marts/customer" in default["assets"] and "spark/staging" not in default["assets"]
    assert "engagement_pipeline" in default["jobs"]


def test_an_unknown_engine_is_refused_by_name(loaded):
    refused = loaded["hadoop"]
    assert "assets" not in refused
    assert "ENGAGEMENT_ENGINE='hadoop' is not valid: choose duckdb or spark" in refused["error"]


@pytest.mark.parametrize("engine", ["spark", "SPARK "])
def test_the_setting_is_read_case_blind(engine):
    from engagement_box import settings

    assert settings.value("ENGAGEMENT_ENGINE", {"ENGAGEMENT_ENGINE": engine}) == "spark"
