"""Every setting is defined once (engagement_box/settings.py) and read when a run uses it."""

import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from engagement_box import settings
from pipelines import resources

REPO = Path(__file__).resolve().parents[1]


def test_readme_table_and_env_example_are_made_from_the_one_definition():
    # (the README says how to make them again; a whole README's difference helps no one)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings.markdown_table() in readme, "README's settings table: see README Settings"
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    assert example == settings.env_example(), ".env.example: see README Settings"


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


@pytest.mark.parametrize(
    ("name", "bad", "words"),
    [
        ("ENGAGEMENT_CIV_BETA", "1.5", "between 0 and 1, both excluded"),
        ("ENGAGEMENT_CIV_BETA", "0", "between 0 and 1, both excluded"),
        ("ENGAGEMENT_CIV_ATTRIBUTION_SHARE", "2", "from 0 to 1"),
        ("ENGAGEMENT_QUADRANT_CRV_QUANTILE", "-0.1", "from 0 to 1"),
        ("ENGAGEMENT_CRV_VALUE_CREDIBILITY", "-3", "0 or more"),
        ("ENGAGEMENT_MONTHLY_DISCOUNT_RATE", "-1", "from 0 to below 1, such as 0.01 (1 %)"),
        # A reviewer's: a run that could never pass its checks, and CLVs 650 times too large.
        ("ENGAGEMENT_CLV_HORIZON_MONTHS", "0", "at least 1"),
        ("ENGAGEMENT_MONTHLY_DISCOUNT_RATE", "-0.5", "from 0 to below 1"),
        # someone meaning 1 %, 30 %: published a tenth of CLV, 30 times CLV (a review)
        ("ENGAGEMENT_MONTHLY_DISCOUNT_RATE", "1", "from 0 to below 1"),
        ("ENGAGEMENT_MARGIN", "30", "a share of revenue from 0 to 1, such as 0.3"),
        # each bound of its range (a mutation review: dropping one passed every test)
        ("ENGAGEMENT_MARGIN", "-0.3", "a share of revenue from 0 to 1"),
        ("ENGAGEMENT_QUADRANT_CLV_QUANTILE", "1.5", "from 0 to 1"),
        ("ENGAGEMENT_CIV_BETA", "1", "between 0 and 1, both excluded"),
        ("ENGAGEMENT_HOLDOUT_DAYS", "0", "at least 1"),
        ("ENGAGEMENT_CURRENCY", "usdd", "a three-letter currency code such as USD"),
        ("ENGAGEMENT_CURRENCY", "US Dollar", "a three-letter currency code"),
        ("ENGAGEMENT_CKV_VALUE_PER_REVIEW", "-1", "a number, 0 or more"),
        ("ENGAGEMENT_MARGIN", "abc", "a number, such as 0.5"),
        ("ENGAGEMENT_MARGIN", "nan", "finite"),
        ("ENGAGEMENT_DUCKDB_THREADS", "zero", "a whole number"),
        ("ENGAGEMENT_KEEP_VERSIONS", "0", "at least 1"),
        ("ENGAGEMENT_KEEP_DAYS", "abc", "a whole number"),
        ("ENGAGEMENT_PERSONA_REFIT_DAYS", "-1", "0 or more"),
        ("ENGAGEMENT_FX_RATES", "{GBP:1.27}", 'a JSON object such as {"GBP": 1.27}'),
        # Each of these got past the check: a step failed later, or a version was published.
        ("ENGAGEMENT_FX_RATES", '{"GBP": 0}', "the rate of GBP is 0; a rate must be a number"),
        ("ENGAGEMENT_FX_RATES", '{"GBP": "1.3"}', "a rate must be a number above 0"),
        ("ENGAGEMENT_FX_RATES", '{"pounds": 1.3}', "not a three-letter currency code"),
        ("ENGAGEMENT_FX_RATES", '{"ÄBC": 1.2}', "not a three-letter currency code"),
        ("ENGAGEMENT_FX_RATES", '{"GBP": 1.27, "gbp": 1.3}', "GBP is given twice"),
        ("ENGAGEMENT_SOCIAL_POINTS", '{"like": "x"}', "the points of like are 'x'"),
        ("ENGAGEMENT_SOCIAL_POINTS", '{"like": -5}', "expected a number, 0 or more"),
        ("ENGAGEMENT_SOCIAL_POINTS", '{"likes": 2}', "'likes' is not an event type"),
        ("ENGAGEMENT_SOCIAL_POINTS", "like", 'a JSON object such as {"comment": 5}'),
        ("ENGAGEMENT_TIME_UNIT", "wrong", "must be D (days) or W (weeks)"),
        # A re-review's: DuckDB reads these as patterns (every customer twice from a copy of the
        # warehouse's folder beside it; with `?`, no run could commit).
        ("ENGAGEMENT_WAREHOUSE", "/srv/wh*/engagement.duckdb", "DuckDB reads as a pattern"),
        ("ENGAGEMENT_WAREHOUSE", "/srv/eb [1]/engagement.duckdb", "the path holds [ ]"),
        ("ENGAGEMENT_WORKING_DB", "/srv/wh?/work.duckdb", "the path holds ?"),
        ("ENGAGEMENT_LAKE_DIR", "/srv/lake[2]", "choose a path without them"),
        ("ENGAGEMENT_DATA_DIR", "/srv/ex[1]", "the path holds [ ]"),  # read ex1/'s files
        ("ENGAGEMENT_AUDIENCE_DIR", "/srv/aud*", "the path holds *"),
    ],
)
def test_a_value_out_of_range_is_refused_in_words_before_any_step(monkeypatch, name, bad, words):
    """What the steps would refuse halfway through a run (e.g. CIV's decay of 1.5, found by the
    engagement step after fifteen others) is refused by the setting itself, so
    `engagement-box run` stops before any step, naming the variable in plain words."""
    with pytest.raises(ValueError) as refused:
        settings.value(name, {name: bad})
    assert name in str(refused.value) and words in str(refused.value)
    assert "could not convert" not in str(refused.value)
    monkeypatch.setenv(name, bad)
    assert settings.first_problem() == str(refused.value)


def test_a_rate_for_the_reporting_currency_itself_is_refused_before_any_step(monkeypatch):
    """ENGAGEMENT_FX_RATES='{"USD": 2}' with USD reporting was ignored without a word (and a
    version published); the fx_rates export refuses such a row (a review)."""
    monkeypatch.setenv("ENGAGEMENT_FX_RATES", '{"usd": 2, "GBP": 1.27}')
    assert settings.first_problem() == (
        "ENGAGEMENT_FX_RATES gives a rate for USD, the reporting currency (ENGAGEMENT_CURRENCY): "
        "its rate is 1 by definition; remove it"
    )
    monkeypatch.setenv("ENGAGEMENT_CURRENCY", "gbp")
    assert "a rate for GBP, the reporting currency" in settings.first_problem()
    monkeypatch.setenv("ENGAGEMENT_CURRENCY", "EUR")
    assert settings.first_problem() is None


def test_a_calibration_end_on_or_after_a_pinned_as_of_is_refused_before_any_step(monkeypatch):
    """Both dates are known before a run starts, but the run compared them only in
    work/version_inputs, after staging every export (a review). Asked of monthly runs only:
    retention takes no as-of, and was refused too (a re-review)."""
    today = date(2026, 12, 4)
    monkeypatch.setenv("ENGAGEMENT_AS_OF", "2025-06-30")
    monkeypatch.setenv("ENGAGEMENT_CALIBRATION_END", "2025-06-30")
    assert settings.first_problem() is None  # retention, audience files: nothing to compare
    assert resources.window_problem(None, today) == (
        "ENGAGEMENT_CALIBRATION_END=2025-06-30 must be before ENGAGEMENT_AS_OF=2025-06-30: the "
        "holdout is the days after the calibration end, up to the as-of"
    )
    monkeypatch.setenv("ENGAGEMENT_CALIBRATION_END", "2025-03-31")
    assert resources.window_problem(None, today) is None


def test_every_value_the_settings_accept_the_engagement_step_accepts(monkeypatch):
    """The settings' ranges are the engagement settings' own: a value at the edge of what a
    setting accepts does not fail the engagement step later."""
    edges = {
        "ENGAGEMENT_CIV_BETA": "0.999",
        "ENGAGEMENT_CIV_ATTRIBUTION_SHARE": "1",
        "ENGAGEMENT_QUADRANT_CLV_QUANTILE": "0",
        "ENGAGEMENT_QUADRANT_CRV_QUANTILE": "1",
        "ENGAGEMENT_CRV_UNKNOWN_TYPE2_SHARE": "0",
        "ENGAGEMENT_CRV_VALUE_CREDIBILITY": "0",
        "ENGAGEMENT_MONTHLY_DISCOUNT_RATE": "0",
        "ENGAGEMENT_CLV_HORIZON_MONTHS": "1",
    }
    for name, text in edges.items():
        monkeypatch.setenv(name, text)
    built = resources.EngagementConfig().to_settings(resources.ModelSettings())
    assert built.civ_beta == 0.999 and built.civ_attribution_share == 1.0
    assert built.crv_value_credibility == 0.0 and built.horizon_months == 1


def test_time_units_read_in_words_and_rates_in_upper_case():
    assert settings.value("ENGAGEMENT_TIME_UNIT", {"ENGAGEMENT_TIME_UNIT": "weeks"}) == "W"
    assert settings.value("ENGAGEMENT_TIME_UNIT", {"ENGAGEMENT_TIME_UNIT": " d "}) == "D"
    given = {"ENGAGEMENT_FX_RATES": '{"gbp": 1.27, "EUR": 1}'}
    assert settings.value("ENGAGEMENT_FX_RATES", given) == {"GBP": 1.27, "EUR": 1.0}


def test_a_variable_that_looks_like_a_setting_but_is_none_is_said(tmp_path, monkeypatch, capsys):
    """ENGAGEMENT_TIMEUNIT=W (or ENGAGMENT_TIME_UNIT) was ignored without a word: the run said
    "nothing to do" and the user believed weeks were in force."""
    from engagement_box import cli

    assert settings.unknown_variables(
        {
            "ENGAGEMENT_TIMEUNIT": "W",
            "ENGAGMENT_TIME_UNIT": "W",
            "HOME": "/",
            "ENGAGEMENT_MARGIN": "1",
        }
    ) == [
        "warning: ENGAGEMENT_TIMEUNIT is not a setting (did you mean ENGAGEMENT_TIME_UNIT?); "
        "it is ignored",
        "warning: ENGAGMENT_TIME_UNIT is not a setting (did you mean ENGAGEMENT_TIME_UNIT?); "
        "it is ignored",
    ]
    assert settings.unknown_variables({"ENGAGEMENT_COLOUR": "blue"}) == [
        "warning: ENGAGEMENT_COLOUR is not a setting; it is ignored"
    ]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENGAGEMENT_TIMEUNIT", "W")
    monkeypatch.setenv("ENGAGEMENT_CIV_BETA", "1.5")  # so that nothing runs
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    assert cli.main(["run"]) == 2
    assert "warning: ENGAGEMENT_TIMEUNIT is not a setting" in capsys.readouterr().out


def test_a_copy_of_env_example_sets_nothing_until_a_line_is_uncommented():
    """`.env.example` copied to `.env` set every setting, and every dagster command takes `.env`
    over the shell: its relative DAGSTER_HOME stopped `dagster dev` with a traceback, and its
    ENGAGEMENT_ENGINE=duckdb hid the Spark job the README's exported engine asks for (a review).
    Read as Dagster reads `.env`, it sets nothing; each line uncommented is a setting."""
    from dotenv import dotenv_values

    text = (REPO / ".env.example").read_text(encoding="utf-8")
    assert dotenv_values(stream=io.StringIO(text)) == {}
    uncommented = "\n".join(line.removeprefix("# ") for line in text.splitlines())
    names = [n for n in dotenv_values(stream=io.StringIO(uncommented)) if n.isupper()]
    assert names == [s.name for s in settings.SETTINGS]


def test_a_relative_dagster_home_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    """A `.env` with DAGSTER_HOME=.dagster (as `.env.example` had it, uncommented, before
    2026-12-06): `engagement-box run` died with Dagster's "must be an absolute path" traceback."""
    from engagement_box import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", ".dagster")
    assert cli._instance_home() == str(tmp_path / ".dagster")
    assert os.environ["DAGSTER_HOME"] == str(tmp_path / ".dagster")


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


def test_the_cli_reads_dot_env_as_dagster_does_and_says_when_the_shell_differs(
    tmp_path, monkeypatch, capsys
):
    """`.env.example` says "copy to .env": Dagster's commands load that file for the UI's runs,
    but `engagement-box` ignored it, so a rate set there held in the UI and not in the CLI. The
    CLI now reads it too; a variable the shell also sets keeps the shell's value, and the CLI
    says so when the two differ (Dagster lets the file win)."""
    from engagement_box import cli

    (tmp_path / ".env").write_text(
        "ENGAGEMENT_CIV_BETA=1.5\nENGAGEMENT_MARGIN=0.3\n# a comment\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENGAGEMENT_CIV_BETA", "0.5")  # recorded, so the file's value is undone
    monkeypatch.delenv("ENGAGEMENT_CIV_BETA")
    monkeypatch.setenv("ENGAGEMENT_MARGIN", "0.4")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(tmp_path / "w" / "e.duckdb"))
    assert cli.main(["run", "--month", "2025-12"]) == 2  # the file's bad value stops the run
    out, err = capsys.readouterr()
    # the file's, said as the file's (`dagster` commands load the same file: they say it too)
    assert f"ENGAGEMENT_CIV_BETA='1.5' (set in {tmp_path / '.env'}) is not valid" in err
    assert os.environ["ENGAGEMENT_MARGIN"] == "0.4"  # the shell's value stands
    (warning,) = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warning.startswith(
        f"warning: ENGAGEMENT_MARGIN differs between the environment and {tmp_path / '.env'}"
    )
    assert not (tmp_path / "w").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("given", ["env", "resource"])
def test_a_versions_social_points_are_json_an_analyst_can_read(monkeypatch, given):
    """`marts.snapshots.settings` held the social points as Python's text of a dict
    (`{'like': 3.0}`), which `json_extract` cannot read."""
    from assets.publish import run_settings
    from engagement_box.governance.versions import json_value

    text = '{"like": 3, "share": 0}'
    if given == "env":
        monkeypatch.setenv("ENGAGEMENT_SOCIAL_POINTS", text)
        config = resources.EngagementConfig()
    else:
        config = resources.EngagementConfig(social_points_json=text)
    recorded = json.dumps(run_settings({"as_of": "2026-06-30"}, config))
    blank = run_settings({"as_of": "2026-06-30"}, resources.EngagementConfig(social_points_json=""))
    # given empty is not given: the environment's points, else the defaults (None)
    assert blank["social_points_json"] == ({"like": 3.0, "share": 0.0} if given == "env" else None)
    like, share = duckdb.execute(
        "SELECT json_extract(?::JSON, '$.social_points_json.like')::DOUBLE, "
        "json_extract(?::JSON, '$.social_points_json.share')::DOUBLE",
        [recorded, recorded],
    ).fetchone()
    assert (like, share) == (3.0, 0.0)
    assert json_value({"b": 1, "a": None}) == {"a": None, "b": 1}


def test_crv_looks_forward_over_the_clv_horizon_given_in_code(monkeypatch):
    """A horizon and discount rate given to ModelSettings in code (the launchpad, a test) are
    the CRV's too: CEV adds a CLV and a CRV of one horizon, whatever the environment says."""
    monkeypatch.setenv("ENGAGEMENT_CLV_HORIZON_MONTHS", "12")
    monkeypatch.setenv("ENGAGEMENT_MONTHLY_DISCOUNT_RATE", "0.01")
    model = resources.ModelSettings(clv_horizon_months=6, monthly_discount_rate=0.02)
    built = resources.EngagementConfig().to_settings(model)
    assert (built.horizon_months, built.monthly_discount_rate) == (6, 0.02)
    from_env = resources.EngagementConfig().to_settings(resources.ModelSettings())
    assert (from_env.horizon_months, from_env.monthly_discount_rate) == (12, 0.01)


def test_a_relative_path_under_a_folder_read_as_a_pattern_is_refused(tmp_path, monkeypatch):
    """The setting's text held no pattern character, the path it resolves to did: `sample` run
    from a folder `p[1]/` read the exports of `p1/` beside it (a re-review)."""
    odd = tmp_path / "p[1]"
    odd.mkdir()
    monkeypatch.chdir(odd)
    monkeypatch.setenv("ENGAGEMENT_DATA_DIR", "sample")
    said = settings.first_problem()
    assert said is not None and "ENGAGEMENT_DATA_DIR is " in said and "[ ]" in said, said
    assert settings.path_problem() == said
    monkeypatch.chdir(tmp_path)
    assert settings.first_problem() is None


def test_a_bad_or_misspelled_setting_set_in_dot_env_names_the_file(tmp_path, monkeypatch):
    """Every `dagster` command loads `.env` from its folder into the environment: a bad value
    there failed a run with "ENGAGEMENT_MARGIN='abc' is not valid" and a user looked for it in
    their shell (an on-call review). The file is named when the value is its; a value from the
    shell is not said to be the file's; a misspelled name in it is warned of in the run's log."""
    import dagster as dg

    monkeypatch.chdir(tmp_path)
    env = tmp_path / ".env"
    env.write_text("ENGAGEMENT_MARGIN=abc\nENGAGEMENT_HOLDOUT_DAY=30\n")
    for name, value in (("ENGAGEMENT_MARGIN", "abc"), ("ENGAGEMENT_HOLDOUT_DAY", "30")):
        monkeypatch.setenv(name, value)  # as Dagster loads it
    assert settings.first_problem() == (
        f"ENGAGEMENT_MARGIN='abc' (set in {env}) is not valid: expected a number, such as 0.5"
    )
    assert settings.unknown_variables() == [
        f"warning: ENGAGEMENT_HOLDOUT_DAY (set in {env}) is not a setting (did you mean "
        "ENGAGEMENT_HOLDOUT_DAYS?); it is ignored"
    ]
    monkeypatch.setenv("ENGAGEMENT_MARGIN", "x")  # the shell's, not the file's
    assert settings.first_problem() == (
        "ENGAGEMENT_MARGIN='x' is not valid: expected a number, such as 0.5"
    )

    monkeypatch.delenv("ENGAGEMENT_MARGIN")
    from assets.staging import staged_assets
    from engagement_box.staging.contracts import SOURCES

    fx = next(a for a in staged_assets if a.key == dg.AssetKey(["staging", "fx_rates"]))
    for source in SOURCES:
        (tmp_path / "exports" / source).mkdir(parents=True)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [fx],
            instance=instance,
            resources={
                "warehouse": resources.Warehouse(
                    database=str(tmp_path / "published.duckdb"),
                    working_database=str(tmp_path / "working.duckdb"),
                ),
                "exports": resources.ExportsResource(data_dir=str(tmp_path / "exports")),
            },
        )
        assert result.success
        logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert (
        f"ENGAGEMENT_HOLDOUT_DAY (set in {env}) is not a setting (did you mean "
        "ENGAGEMENT_HOLDOUT_DAYS?); it is ignored"
    ) in logged


def test_a_date_of_the_right_form_but_no_such_day_says_so():
    """ENGAGEMENT_AS_OF=2026-02-29 was refused with "expected a date YYYY-MM-DD", which it
    is written as (a review of calendar edges): the month has no such day."""
    assert settings.first_problem({"ENGAGEMENT_AS_OF": "2026-02-29"}) == (
        "ENGAGEMENT_AS_OF='2026-02-29' is not valid: 2026-02 has 28 days: no day 29"
    )
    assert settings.first_problem({"ENGAGEMENT_AS_OF": "2026-02-3"}) == (
        "ENGAGEMENT_AS_OF='2026-02-3' is not valid: expected a date YYYY-MM-DD"
    )
    assert settings.value("ENGAGEMENT_AS_OF", {"ENGAGEMENT_AS_OF": "2028-02-29"}) == "2028-02-29"


def test_the_social_points_a_run_counts_are_the_defaults_with_what_is_given_over_them(
    monkeypatch,
):
    """Nobody sets ENGAGEMENT_SOCIAL_POINTS, so the defaults are every run's points: without
    them every published social_points is 0 and personas read everyone as socially quiet; a
    partial setting changes its event types and keeps the others' (a mutation review found no
    test asserting either)."""
    from engagement_box.engagement.config import DEFAULT_SOCIAL_POINTS

    monkeypatch.delenv("ENGAGEMENT_SOCIAL_POINTS", raising=False)
    model = resources.ModelSettings()
    assert resources.EngagementConfig().to_settings(model).social_points == dict(
        DEFAULT_SOCIAL_POINTS
    )
    assert min(DEFAULT_SOCIAL_POINTS.values()) > 0
    monkeypatch.setenv("ENGAGEMENT_SOCIAL_POINTS", '{"comment": 3}')
    assert resources.EngagementConfig().to_settings(model).social_points == {
        **DEFAULT_SOCIAL_POINTS,
        "comment": 3.0,
    }
