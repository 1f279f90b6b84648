"""The Spark engine's published marts: Parquet under ENGAGEMENT_LAKE_DIR, one version at a time.

    <lake>/history/<mart>/snapshot_id=<n>/   every retained version (written once, never changed)
    <lake>/marts/<mart>                      the current version (a link to its history folder)
    <lake>/marts/_current.json               the current snapshot id and each mart's folder,
                                             the retained versions and the expired ones

A version is published in three steps: each mart is written to a hidden folder beside its
history and renamed to `snapshot_id=<n>` when complete; then `_current.json` is written under
a temporary name and renamed over the old one (`os.replace`, atomic); then each mart's link is
switched the same way. A reader that follows `_current.json` (`attach`) sees the old version or
the new one, never a mix. Renames are atomic on a local or network file system and on HDFS;
on an object store (S3, GCS) read through `_current.json` only. No Dagster import here.

Retention (`retain`, after each publish) keeps the newest `keep_versions` versions younger than
`keep_days` days, and the current one, as the DuckDB engine does (`marts/snapshots_to_expire.sql`).
An expired version leaves `_current.json`'s `retained` at once, so a session attached from then
on does not see it, and its folders stay for `EXPIRED_GRACE` (a session attached before reads
them), then are deleted by the next `retain`.
"""

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engagement_box.clock import utc_now
from engagement_box.settings import pattern_characters

POINTER = "_current.json"
# How long an expired version's folders stay for sessions attached before it expired (the
# DuckDB engine's `readers.EXPIRED_FILES_GRACE`).
EXPIRED_GRACE = timedelta(days=1)


def _now() -> datetime:
    """The lake's clock (`clock.utc_now`), one name the tests can set."""
    return utc_now()


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


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _retained(lake: Path, record: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    """The retained versions of the record (snapshot id as text -> published_at). A lake
    published before versions were recorded: every complete version on disk, each published
    when the oldest of its folders was written (an erasure rewrites the folders holding the
    person, never all of a version's: `model_fit` holds no customer). A copy of the lake that
    did not keep the files' times makes its versions look published when copied."""
    if record is not None and "retained" in record:
        return dict(record["retained"])
    retained = {}
    newest = int(record["snapshot_id"]) if record is not None else None
    for snapshot_id in snapshot_ids(lake):
        if newest is not None and snapshot_id > newest:  # a publish that stopped: never current
            continue
        folders = list((lake / "history").glob(f"*/snapshot_id={snapshot_id}"))
        changed = min(f.stat().st_mtime for f in folders)
        moment = datetime.fromtimestamp(changed, UTC).replace(tzinfo=None)
        retained[str(snapshot_id)] = {"published_at": _stamp(moment)}
    return retained


def _write_record(lake: Path, record: dict[str, Any]) -> None:
    """`_current.json` replaced whole (a temporary name, then a rename)."""
    marts_dir = lake / "marts"
    marts_dir.mkdir(parents=True, exist_ok=True)
    temporary = marts_dir / f".{POINTER}.{uuid.uuid4().hex}"
    temporary.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, marts_dir / POINTER)


def becomes_current(previous: dict[str, Any] | None, settings: dict[str, Any]) -> bool:
    """Whether a version of `settings["as_of"]` is the current one after `previous` (the lake's
    record): unless the current version's as-of is later. A backfill of an earlier as-of is
    kept among the versions and moves neither the marts nor the audience files back in time,
    as the DuckDB engine's (a Spark user's review: a run with ENGAGEMENT_AS_OF four months back
    became current and wrote March's audience files over July's)."""
    before = ((previous or {}).get("settings") or {}).get("as_of")
    as_of = settings.get("as_of")
    return before is None or as_of is None or str(as_of) >= str(before)


def publish(lake: Path, marts: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Write every mart (Spark DataFrames, or folders of Parquet files, by name) as a new
    version and make it current, unless the current version has a later as-of
    (`becomes_current`): then the record stays the current version's, the new one retained
    beside it. The returned record is the new version's, with `current` saying which."""
    lake = Path(lake)
    existing = snapshot_ids(lake)
    snapshot_id = (existing[-1] + 1) if existing else 1
    previous = current(lake)
    retained = _retained(lake, previous)
    made_current = becomes_current(previous, settings)
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
    published_at = _stamp(_now())
    record = {
        "snapshot_id": snapshot_id,
        "published_at": published_at,
        "marts": folders,
        "settings": settings,
        "retained": {**retained, str(snapshot_id): {"published_at": published_at}},
        "expired": dict((previous or {}).get("expired", {})),
    }
    if not made_current:  # the current version stays; the new one is retained beside it
        _write_record(lake, {**previous, "retained": record["retained"]})
        return {**record, "current": False}
    _write_record(lake, record)
    marts_dir = lake / "marts"
    for mart, folder in folders.items():
        link = marts_dir / f".{mart}.{uuid.uuid4().hex}"
        os.symlink(Path("..") / folder, link)
        os.replace(link, marts_dir / mart)
    return {**record, "current": True}


@dataclass
class LakeRetention:
    """What `retain` did: the versions it expired now, the expired versions whose folders it
    deleted (their grace over), and how many versions stay."""

    expired: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    kept: int = 0


def retain(
    lake: Path, *, keep_versions: int, keep_days: int, now: datetime | None = None
) -> LakeRetention:
    """Apply the retention policy to the lake's versions (see the module's docstring). `now`:
    naive UTC, as `published_at` is written. Run under the lake's run lock (a Spark run's last
    step calls it), never beside a publish."""
    if keep_versions < 1:
        raise ValueError("keep_versions must be at least 1")
    lake = Path(lake)
    record = current(lake)
    if record is None:
        return LakeRetention()
    now = now or _now()
    retained = _retained(lake, record)
    expired = dict(record.get("expired", {}))
    for snapshot_id in snapshot_ids(lake):  # a version a stopped publish left, in neither list
        if str(snapshot_id) not in retained and str(snapshot_id) not in expired:
            expired[str(snapshot_id)] = _stamp(now)
    _delete_stopped_writes(lake, now)
    newest_first = sorted(retained, key=int, reverse=True)
    try:
        oldest_kept = now - timedelta(days=keep_days)
    except OverflowError:  # more days than the calendar has before now: none too old
        oldest_kept = datetime.min
    gone = [
        snapshot_id
        for rank, snapshot_id in enumerate(newest_first, start=1)
        if int(snapshot_id) != int(record["snapshot_id"])
        and (
            rank > keep_versions
            or datetime.fromisoformat(retained[snapshot_id]["published_at"]) < oldest_kept
        )
    ]
    for snapshot_id in gone:
        del retained[snapshot_id]
        expired[snapshot_id] = _stamp(now)
    over = [s for s, at in expired.items() if datetime.fromisoformat(at) <= now - EXPIRED_GRACE]
    for snapshot_id in over:  # deleted first: a stop here leaves them listed, deleted next time
        for folder in (lake / "history").glob(f"*/snapshot_id={snapshot_id}"):
            shutil.rmtree(folder)
    for snapshot_id in over:
        del expired[snapshot_id]
    if expired != record.get("expired") or gone or "retained" not in record:
        _write_record(lake, {**record, "retained": retained, "expired": expired})
    return LakeRetention(
        expired=sorted(int(s) for s in gone),
        deleted=sorted(int(s) for s in over),
        kept=len(retained),
    )


def _delete_stopped_writes(lake: Path, now: datetime) -> None:
    """Delete the hidden folders of a publish that stopped while writing a mart
    (`.writing-...`) once they are older than `EXPIRED_GRACE`: no version names them."""
    for folder in (lake / "history").glob("*/.writing-*"):
        written = datetime.fromtimestamp(folder.stat().st_mtime, UTC).replace(tzinfo=None)
        if written <= now - EXPIRED_GRACE:
            shutil.rmtree(folder)


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
    # What a publish that stopped was writing: no reader uses it, and it may hold the person
    # (erase holds the lake's run lock: no publish is writing now).
    for folder in (lake / "history").glob("*/.writing-*"):
        shutil.rmtree(folder)
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


def _history_files(lake: Path, record: dict[str, Any], mart: str) -> str:
    """The relation of the rows of `mart`'s retained versions, with their snapshot_id (a lake
    published before versions were recorded: every version's folder). By column name: a
    column a later version added (persona_profile.model_fitted_as_of) is NULL in the older
    ones, not dropped from every version as the first file's columns would have it."""
    from engagement_box.sql import quote_literal

    history = Path(lake) / "history" / mart
    every = quote_literal(str(history / "snapshot_id=*" / "*.parquet"))
    if "retained" not in record:
        return f"read_parquet({every}, hive_partitioning = true, union_by_name = true)"
    folders = {
        int(s): history / f"snapshot_id={s}"
        for s in sorted(record["retained"], key=int)
        if (history / f"snapshot_id={s}").is_dir()
    }
    if folders and not pattern_characters(str(history)):
        # The folders there are at each query, kept to the versions retained at attach: a
        # list of one pattern per version failed every query of a session attached before
        # one of them was deleted (retention after its day of grace, an erasure).
        kept = ", ".join(str(s) for s in folders)
        return (
            f"(SELECT * FROM read_parquet({every}, hive_partitioning = true, union_by_name = true) "
            f"WHERE snapshot_id IN ({kept}))"
        )
    globs = [quote_literal(str(f / "*.parquet")) for f in folders.values()]
    return f"read_parquet([{', '.join(globs)}], hive_partitioning = true, union_by_name = true)"


def attach(con, lake: Path, schema: str = "marts") -> list[str]:
    """In a DuckDB session: one view per mart of the current version (`<schema>.<mart>`) and
    `history_<mart>` over every retained version (with its snapshot_id). Returns the marts.
    The views keep the versions retained when they were made (attach again for newer ones)."""
    from engagement_box.sql import load_sql, quote_identifier, quote_literal, sql_template

    record = current(lake)
    if record is None:
        raise FileNotFoundError(f"{lake}: no published version yet (no marts/{POINTER})")
    con.execute(load_sql("marts/create_schema", schema=schema))
    for mart, folder in record["marts"].items():
        files = quote_literal(str(Path(lake) / folder / "*.parquet"))
        every = _history_files(lake, record, mart)
        con.execute(
            sql_template("marts/create_lake_mart_view").format(
                schema=quote_identifier(schema), mart=quote_identifier(mart), files=files
            )
        )
        con.execute(
            sql_template("marts/create_lake_history_view").format(
                schema=quote_identifier(schema),
                view=quote_identifier("history_" + mart),
                source=every,
            )
        )
    return list(record["marts"])
