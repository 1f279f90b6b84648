"""Every setting is defined once (engagement_box/settings.py) and read when a run uses it."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from engagement_box import settings
from pipelines import resources

REPO = Path(__file__).resolve().parents[1]


def test_readme_table_and_env_example_are_made_from_the_one_definition():
    assert settings.markdown_table() in (REPO / "README.md").read_text(encoding="utf-8")
    assert (REPO / ".env.example").read_text(encoding="utf-8") == settings.env_example()


def test_every_resource_field_maps_to_a_defined_setting():
    for cls in (
        resources.ExportsResource,
        resources.ModelSettings,
        resources.EngagementConfig,
        resources.RetentionPolicy,
    ):
        assert set(cls._ENV.values()) <= set(settings.BY_NAME), cls.__name__


def test_a_setting_is_read_when_the_resource_is_used_not_at_import(monkeypatch):
    model = resources.ModelSettings()  # built the way the code location builds it
    monkeypatch.setenv("ENGAGEMENT_HOLDOUT_DAYS", "91")
    monkeypatch.setenv("ENGAGEMENT_TIME_UNIT", "w")
    monkeypatch.delenv("ENGAGEMENT_AS_OF", raising=False)
    cfg = model.resolved()
    assert cfg.holdout_days == 91 and cfg.time_unit == "W" and cfg.as_of is None
    assert not cfg.as_of_pinned
    # a value given in code wins over the environment
    assert resources.ModelSettings(holdout_days=30).resolved().holdout_days == 30
    monkeypatch.setenv("ENGAGEMENT_HOLDOUT_DAYS", "")  # empty means unset: the default
    assert model.resolved().holdout_days == int(settings.BY_NAME["ENGAGEMENT_HOLDOUT_DAYS"].default)


def test_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("ENGAGEMENT_TIME_UNIT", "months")
    with pytest.raises(ValueError, match="ENGAGEMENT_TIME_UNIT"):
        resources.ModelSettings().resolved()
    monkeypatch.setenv("ENGAGEMENT_FX_RATES", "[1, 2]")
    with pytest.raises(ValueError, match="ENGAGEMENT_FX_RATES"):
        settings.value("ENGAGEMENT_FX_RATES")


def test_importing_the_code_location_writes_nothing(tmp_path):
    target = tmp_path / "not-yet" / "w.duckdb"
    env = {**os.environ, "ENGAGEMENT_WAREHOUSE": str(target)}
    subprocess.run(
        [sys.executable, "-c", "import pipelines.definitions"], cwd=REPO, env=env, check=True
    )
    assert not target.parent.exists()


def test_path_settings_given_are_taken_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENGAGEMENT_DATA_DIR", "exports")
    assert settings.data_dir() == tmp_path / "exports"
    monkeypatch.delenv("ENGAGEMENT_DATA_DIR")
    assert settings.data_dir() == REPO / "data" / "sample"


def test_duckdb_threads_caps_every_step_connection(tmp_path, monkeypatch):
    warehouse = resources.warehouse_resource(tmp_path / "w.duckdb")
    monkeypatch.setenv("ENGAGEMENT_DUCKDB_THREADS", "3")
    with warehouse.get_connection() as con:
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 3
    monkeypatch.delenv("ENGAGEMENT_DUCKDB_THREADS")  # unset: DuckDB's own default
    with warehouse.get_connection() as con:
        default = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == default
    monkeypatch.setenv("ENGAGEMENT_DUCKDB_THREADS", "0")
    with pytest.raises(ValueError, match="ENGAGEMENT_DUCKDB_THREADS='0' is not valid"):
        with warehouse.get_connection():
            pass
