"""Loggers: Dagster's full log of a run, in a file of its own.

`engagement-box run` turns this logger on instead of Dagster's console logger (the console gets
one line per step). A run re-executed from the UI inherits the run config, so it writes its own
file too. The event log in Dagster's storage, which the UI shows, is the same either way.
"""

import logging
import os
from pathlib import Path

import dagster as dg

from engagement_box import settings

RUN_LOG_FILE = "run_log_file"
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


# Not DAGSTER_HOME/logs: that folder is Dagster's telemetry cache, which `dagster dev` and the
# daemon upload and then empty whatever dagster.yaml says of telemetry
# (dagster/_core/telemetry_upload.py): run logs written there left the machine and were gone.
RUN_LOG_DIR = "run_logs"


def run_log_path(run_id: str) -> Path:
    """Where the full Dagster log of `run_id` is written: DAGSTER_HOME/run_logs/<run id>.log."""
    home = os.environ.get("DAGSTER_HOME") or str(settings.REPO_ROOT / ".dagster")
    return Path(home) / RUN_LOG_DIR / f"{run_id}.log"


class _AppendingHandler(logging.Handler):
    """Appends each record to the file, opening and closing it every time. A Dagster logger has
    no end of run to close a `logging.FileHandler` at: each run left its log file open until the
    garbage collector found it (a ResourceWarning in the tests, which run many in one process;
    a handle per run in a long-lived process). A run writes a few thousand lines: the opens
    cost milliseconds."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with open(self.path, "a", encoding="utf-8") as log:
                log.write(line + "\n")
        except Exception:  # as logging.FileHandler does: said on stderr, the run goes on
            self.handleError(record)


@dg.logger(description="Every Dagster log line of the run, in DAGSTER_HOME/run_logs/<run id>.log.")
def run_log_file(init_context: dg.InitLoggerContext) -> logging.Logger:
    path = run_log_path(init_context.run_id or "no-run")
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.Logger("dagster", level=logging.DEBUG)
    handler = _AppendingHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%d %H:%M:%S %z"))
    logger.addHandler(handler)
    return logger
