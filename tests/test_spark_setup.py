"""What stops a Spark run before its JVM starts, said plainly (no JVM needed here)."""

from pathlib import Path

import pytest

from pipelines.errors import ConfigurationError
from pipelines.resources import LakeResource, java_problem


@pytest.mark.parametrize("url", ["hdfs://namenode:9000/lake", "s3a://bucket/lake"])
def test_a_lake_given_as_a_url_is_refused(url):
    """`hdfs://localhost:9000/lake` succeeded by writing the whole lake into a local folder
    named `hdfs:` (pathlib folds the `//`), a green run with the lake on the driver's disk."""
    said = LakeResource(lake_dir=url).problem()
    assert said.startswith(f"ENGAGEMENT_LAKE_DIR={url} is a URL")
    assert LakeResource(lake_dir="/mnt/lake").problem() is None


def test_a_lake_folder_that_cannot_be_made_names_the_lake(tmp_path):
    """The lake's run lock that cannot be made told the user to fix ENGAGEMENT_WAREHOUSE."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    lake = LakeResource(lake_dir=str(blocker / "lake"))
    with pytest.raises(ConfigurationError) as refused:
        lake.setup_for_execution(None)
    said = str(refused.value)
    assert "the Spark lake's folder" in said and "ENGAGEMENT_LAKE_DIR" in said
    assert "ENGAGEMENT_WAREHOUSE" not in said


def test_java_missing_is_said_before_spark_starts(tmp_path, monkeypatch):
    """JAVA_HOME naming no java gave Py4J's "Java gateway process exited" and a stack."""
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    said = java_problem()
    assert said.startswith(f"JAVA_HOME={tmp_path / 'no-java'} holds no java")
    java = Path(tmp_path / "jdk" / "bin" / "java")
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert java_problem() is None


def test_a_setting_that_does_not_parse_stops_a_spark_run_before_its_first_step(
    tmp_path, monkeypatch
):
    """ENGAGEMENT_KEEP_VERSIONS=0 failed the Spark run's last step, after it had published a
    version and written the audience files (the run said FAILED with the version live)."""
    monkeypatch.setenv("ENGAGEMENT_KEEP_VERSIONS", "0")
    with pytest.raises(ConfigurationError) as refused:
        LakeResource(lake_dir=str(tmp_path / "lake")).setup_for_execution(None)
    assert str(refused.value).startswith("ENGAGEMENT_KEEP_VERSIONS='0' is not valid")
    assert not (tmp_path / "lake").exists()
