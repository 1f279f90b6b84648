"""What a Spark run's version is computed from, and whether the lake's current version was
computed from the same: the Spark engine's side of the DuckDB engine's `work/version_inputs`.

A run rebuilds every table from every export, so without this a run with nothing new (a daily
schedule on a quiet day) published one more identical version: a full copy of every mart in
the lake, kept until retention, and a version that every comparison of the last two found
unchanged. The inputs are what the staging step read (each export file's path, size and
sha256, and the rows it staged, quarantined and left out as erased: a row dated after one
run's clock is staged by a later run), the erasure register, every setting that changes a
number, and the model code (`versions.model_code_version`). Files are known by content, as
the DuckDB engine knows them: a file edited with its size and modification time kept (`cp -p`,
`rsync -a`, a file system with coarse times) is another input; one sent again unchanged is not.
They are hashed, and the hash is kept in the version's record (`_current.json`,
`settings.inputs_fingerprint`).
"""

import hashlib
import importlib.metadata
import json
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any

from engagement_box.activation import audiences
from engagement_box.clock import shop_zone
from engagement_box.spark import lake as spark_lake
from engagement_box.spark.tables import current_folder, recorded_checks, write_json

# In <lake>/tables: what the last staging read (`record_staged`), and the fingerprint of the
# inputs the tables written since were computed from (`record_fingerprint`).
STAGED_FILE = "_staged_inputs.json"
FINGERPRINT_FILE = "_version_inputs.json"
# What of a staging's record its version is computed from (`inputs_fingerprint`).
_STAGED_INPUTS = ("files", "rows", "erased")
# The staging step's name in the lake's record of checks.
STAGED_STEP = "spark/staging"
# Libraries that read and validate the exports, beside the numeric ones of
# `versions.model_code_version`: a staging after upgrading one of them stages again.
STAGING_LIBRARIES = ("pandera", "pyarrow", "pyspark")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def register_hash(erased: tuple[frozenset[str], str]) -> str:
    """The erasure register (`erased`: the subject hashes and the salt; the salt hashed)."""
    hashes, salt = erased
    register = hashlib.sha256()
    for subject in sorted(hashes):
        register.update(f"{subject}\0".encode())
    register.update(hashlib.sha256(salt.encode()).hexdigest().encode())
    return register.hexdigest()


def staging_code(model_code: str) -> str:
    """What a staging runs: `model_code` (`versions.model_code_version`: the project's code and
    numeric libraries), the versions of `STAGING_LIBRARIES` and the shop's time zone (files
    validated in another are validated again)."""
    libraries = []
    for library in STAGING_LIBRARIES:
        try:
            libraries.append(f"{library}=={importlib.metadata.version(library)}")
        except importlib.metadata.PackageNotFoundError:
            libraries.append(f"{library}==absent")
    return "|".join([model_code, *libraries, f"time_zone={shop_zone()}"])


def record_staged(
    lake: Path,
    reports: dict[str, Any],
    erased: tuple[frozenset[str], str],
    code: str = "",
    at: datetime | None = None,
) -> None:
    """After the staging step: the files it read and what it made of them (`reports`: the
    sources' `SparkIngestReport`), the erasure register it read (`erased`), the code it ran
    (`code`: `staging_code`), its run's time (`at`) and how many rows it quarantined with a
    date after that time among their reasons (a later run stages them). The inputs
    fingerprinted before are forgotten: the tables are now this staging's."""
    record = {
        "files": sorted(f for report in reports.values() for f in report.file_stats),
        "rows": {
            name: [r.rows_read, r.rows_staged, r.rows_quarantined, r.rows_erased]
            for name, r in sorted(reports.items())
        },
        "erased": register_hash(erased),
        "code": code,
        "at": at.isoformat() if at else None,
        "future_rows": sum(r.rows_future for r in reports.values()),
    }
    (Path(lake) / "tables" / FINGERPRINT_FILE).unlink(missing_ok=True)
    write_json(Path(lake) / "tables" / STAGED_FILE, record, default=str)


def staging_stands(
    lake: Path,
    files: list[list],
    erased: tuple[frozenset[str], str],
    code: str,
    tables: list[str],
    at: datetime,
) -> dict[str, Any] | None:
    """The last staging's record when staging again at `at` (this run's time) would write the
    same tables: the same export files by content (`files`: `staging.export_file_stats`), the
    same erasure register and code (`staging_code`), no row it quarantined with a date after
    its run's time among the reasons (a later clock stages it), a time not after `at` (an
    earlier clock quarantines rows it staged), its blocking check passed and every table of
    `tables` written. Else None (stage)."""
    record = _read(Path(lake) / "tables" / STAGED_FILE)
    if record is None or record.get("future_rows") != 0:  # None: a record from before it
        return None
    try:
        staged_at = datetime.fromisoformat(str(record.get("at")))
    except ValueError:
        return None
    if staged_at > at:
        return None
    if record.get("code") != code or record.get("erased") != register_hash(erased):
        return None
    if record.get("files") != json.loads(json.dumps(files, default=str)):
        return None
    if recorded_checks(Path(lake)).get(STAGED_STEP) != []:
        return None
    if any(current_folder(Path(lake), name) is None for name in tables):
        return None
    return record


def inputs_fingerprint(
    lake: Path, settings: dict[str, Any], model_code: str, profile_keys: list
) -> str | None:
    """The hash of what the last staging read and made of it (its files, rows per source and
    erasure register: not its run's time, nor the code it ran, which a staging of the same
    files with the same outcome leaves out of the version's inputs), `settings` (every setting
    that changes a number), the model code and the keys erased profiles carried (identity
    counts them); None when no staging recorded what it read (a lake staged before this was
    kept)."""
    record = _read(Path(lake) / "tables" / STAGED_FILE)
    if record is None:
        return None
    staged = {k: record.get(k) for k in _STAGED_INPUTS}
    given = {
        "staged": staged,
        "settings": settings,
        "model_code": model_code,
        "erased_profile_keys": sorted(list(k) for k in profile_keys),
    }
    text = json.dumps(given, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_fingerprint(lake: Path, fingerprint: str, run_id: str) -> None:
    """The inputs the tables the run `run_id` writes are computed from (its publish keeps it
    in the version's record)."""
    record = {"inputs_fingerprint": fingerprint, "run_id": run_id}
    write_json(Path(lake) / "tables" / FINGERPRINT_FILE, record)


def forget_fingerprint(lake: Path) -> None:
    """Forget the recorded fingerprint: a step is about to write tables it may not describe (a
    step run alone, or in a re-execution with other settings or code; `assets/spark.py::
    _keep_fingerprint_if_ours` decides)."""
    (Path(lake) / "tables" / FINGERPRINT_FILE).unlink(missing_ok=True)


def recorded_fingerprint(lake: Path, lineage: Collection[str]) -> tuple[str, str] | None:
    """`record_fingerprint`'s fingerprint and run id, when one of the runs `lineage` recorded
    it (the publishing run, or a run it re-executes from failure: Dagster gives a re-execution
    a new run id); else None (not recorded since the last staging, or by another run: a step
    run alone, perhaps with other settings, may have written some of the tables since, and
    `forget_fingerprint` then removed it)."""
    record = _read(Path(lake) / "tables" / FINGERPRINT_FILE) or {}
    value, run_id = record.get("inputs_fingerprint"), record.get("run_id")
    if isinstance(value, str) and isinstance(run_id, str) and run_id in lineage:
        return value, run_id
    return None


def standing_version(lake: Path, fingerprint: str | None, audience_dir: Path) -> int | None:
    """The lake's current version when it was computed from the inputs `fingerprint` and the
    audience folder holds its files, written for this lake; else None (the run computes)."""
    current = spark_lake.current(Path(lake))
    if fingerprint is None or current is None:
        return None
    if (current.get("settings") or {}).get("inputs_fingerprint") != fingerprint:
        return None
    snapshot_id = int(current["snapshot_id"])
    if audiences.recorded_version(audience_dir, engine="spark") != snapshot_id:
        return None
    if audiences.written_for_other(audience_dir, [lake]) or audiences.missing_files(audience_dir):
        return None
    return snapshot_id
