"""The run's log file (DAGSTER_HOME/run_logs/<run id>.log)."""

import os
from pathlib import Path

import dagster as dg

from pipelines.loggers import run_log_file, run_log_path


def _open_paths() -> set[str]:
    fds = Path("/proc/self/fd")
    return {os.path.realpath(p) for p in fds.iterdir()} if fds.is_dir() else set()


def test_each_line_is_written_and_the_file_is_not_left_open(tmp_path, monkeypatch):
    """A Dagster logger has no end of run to close its file at: each run left its log file
    open until the garbage collector found it (a ResourceWarning in the suite)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    logger = run_log_file.logger_fn(dg.build_init_logger_context())
    logger.info("first line")
    logger.warning("second line")
    (path,) = run_log_path("any").parent.iterdir()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [line.split(" - ")[-1] for line in lines] == ["first line", "second line"]
    assert os.path.realpath(path) not in _open_paths()
