"""The Spark engine's published marts: Parquet under ENGAGEMENT_LAKE_DIR, one version at a time.

    <lake>/history/<mart>/snapshot_id=<n>/   every retained version (written once, never changed)
    <lake>/marts/<mart>                      the current version (a link to its history folder)
    <lake>/marts/_current.json               the current snapshot id and each mart's folder

A version is published in three steps: each mart is written to a hidden folder beside its
history and renamed to `snapshot_id=<n>` when complete; then `_current.json` is written under
a temporary name and renamed over the old one (`os.replace`, atomic); then each mart's link is
switched the same way. A reader that follows `_current.json` (`attach`) sees the old version or
the new one, never a mix. Renames are atomic on a local or network file system and on HDFS;
on an object store (S3, GCS) read through `_current.json` only. No Dagster import here.
"""

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

POINTER = "_current.json"


def history_dir(lake: Path, mart: str, snapshot_id: int) -> Path:
    return Path(lake) / "history" / mart / f"snapshot_id={snapshot_id}"


def current(lake: Path) -> dict[str, Any] | None:
    """The current version's record (`_current.json`), or None before the first publish."""
    pointer = Path(lake) / "marts" / POINTER
    if not pointer.exists():
        return None
    return json.loads(pointer.read_text(encoding="utf-8"))


def snapshot_ids(lake: Path) -> list[int]:
    """Every snapshot id with a complete folder of some mart, ascending."""
    ids = set()
    for folder in (Path(lake) / "history").glob("*/snapshot_id=*"):
        ids.add(int(folder.name.split("=", 1)[1]))
    return sorted(ids)


def publish(lake: Path, marts: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Write every mart (Spark DataFrames, or folders of Parquet files, by name) as a new
    version and make it current."""
    lake = Path(lake)
    existing = snapshot_ids(lake)
    snapshot_id = (existing[-1] + 1) if existing else 1
    folders = {}
    for mart, frame in marts.items():
        final = history_dir(lake, mart, snapshot_id)
        hidden = final.with_name(f".writing-{final.name}-{uuid.uuid4().hex}")
        if isinstance(frame, Path):  # a folder of Parquet files already written: copied as is
            shutil.copytree(frame, hidden)
        else:
            frame.sparkSession.sparkContext.setJobDescription(f"publish {mart}")
            frame.write.mode("error").parquet(str(hidden))
        os.rename(hidden, final)
        folders[mart] = str(final.relative_to(lake))
    record = {
        "snapshot_id": snapshot_id,
        "published_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "marts": folders,
        "settings": settings,
    }
    marts_dir = lake / "marts"
    marts_dir.mkdir(parents=True, exist_ok=True)
    temporary = marts_dir / f".{POINTER}.{uuid.uuid4().hex}"
    temporary.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, marts_dir / POINTER)
    for mart, folder in folders.items():
        link = marts_dir / f".{mart}.{uuid.uuid4().hex}"
        os.symlink(Path("..") / folder, link)
        os.replace(link, marts_dir / mart)
    return record


def erase_customers(lake: Path, customer_ids: list[str]) -> dict[str, int]:
    """Rewrite every retained version's files without the rows of `customer_ids`. Returns the
    rows removed per mart (marts without a customer_id column, or without the person, are left
    as they are).

    No Spark: the files are read and written on this machine (polars, one version folder at a
    time), so `engagement-box erase` needs no JVM. A version is rewritten into a hidden folder
    beside it, then swapped in by two renames (the old folder aside, the new one in its place),
    and the old files are deleted: a reader of a version's folder lists either the old files or
    the new ones, never some of each (between the renames the folder is missing and a reader
    gets an error, never a mix).
    """
    import polars as pl

    lake = Path(lake)
    ids = sorted({c for c in customer_ids if c})
    removed: dict[str, int] = {}
    if not ids:
        return removed
    for folder in sorted((lake / "history").glob("*/snapshot_id=*")):
        files = sorted(folder.glob("*.parquet"))
        if not files:
            continue
        mart = folder.parent.name
        schema = pl.read_parquet_schema(files[0])
        if "customer_id" not in schema:
            continue
        hit = pl.scan_parquet(files).filter(pl.col("customer_id").is_in(ids))
        gone = hit.select(pl.len()).collect().item()
        if not gone:
            continue
        fresh = folder.with_name(f".erasing-{folder.name}-{uuid.uuid4().hex}")
        fresh.mkdir()
        for path in files:  # file by file: each keeps its rows' order and the others' rows
            kept = pl.read_parquet(path).filter(~pl.col("customer_id").is_in(ids))
            kept.write_parquet(fresh / path.name)
        old = folder.with_name(f".erased-{folder.name}-{uuid.uuid4().hex}")
        os.rename(folder, old)
        os.rename(fresh, folder)
        shutil.rmtree(old)
        removed[mart] = removed.get(mart, 0) + gone
    return removed


def has_lake(lake: Path | None) -> bool:
    """True when `lake` holds published versions (a lake the Spark engine wrote)."""
    return lake is not None and (Path(lake) / "history").is_dir()


def attach(con, lake: Path, schema: str = "marts") -> list[str]:
    """In a DuckDB session: one view per mart of the current version (`<schema>.<mart>`) and
    `history_<mart>` over every retained version (with its snapshot_id). Returns the marts."""
    from engagement_box.sql import quote_identifier, quote_literal

    record = current(lake)
    if record is None:
        raise FileNotFoundError(f"{lake}: no published version yet (no marts/{POINTER})")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
    for mart, folder in record["marts"].items():
        files = quote_literal(str(Path(lake) / folder / "*.parquet"))
        every = quote_literal(str(Path(lake) / "history" / mart / "snapshot_id=*" / "*.parquet"))
        con.execute(
            f"CREATE OR REPLACE VIEW {quote_identifier(schema)}.{quote_identifier(mart)} AS "
            f"SELECT * FROM read_parquet({files}, hive_partitioning = false)"
        )
        con.execute(
            f"CREATE OR REPLACE VIEW {quote_identifier(schema)}."
            f"{quote_identifier('history_' + mart)} AS "
            f"SELECT * FROM read_parquet({every}, hive_partitioning = true)"
        )
    return list(record["marts"])
