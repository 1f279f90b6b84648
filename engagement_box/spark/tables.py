"""Spark tables kept as Parquet in the lake, and the sql/ statements run against them.

Every table the Spark engine writes (`staging.*`, `intermediate.*`, `work.*`) is a folder of
Parquet files, `<lake>/tables/<schema>.<name>/<write id>/`, registered in the session's catalog
under its DuckDB name, so the sql/ files run unchanged (after transpiling). Each write goes to a
new folder and the table is then pointed at it: a statement that reads the table it rewrites
(an `insert`) never reads files being written. The publish step deletes the earlier writes
(`prune_superseded`). No Dagster import here.
"""

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from engagement_box.spark import sql as spark_sql

CURRENT = "_current"
# `<lake>/tables/_checks.json`: {step: the blocking checks its tables failed when it last ran}
# for the steps with blocking checks. Dagster stops the steps after a failed blocking check in
# the same run only; a later run of those steps alone reads this and refuses the tables (and
# the tables of a step with no entry: it never ran in this lake, or under an earlier release).
CHECKS = "_checks.json"
# What a step records when it starts: left in place by a step that stopped (an error, a kill)
# before it recorded its checks, whose tables may be partly written.
UNFINISHED = "(the step did not finish)"


def _checks_path(lake: Path) -> Path:
    return Path(lake) / "tables" / CHECKS


def recorded_checks(lake: Path) -> dict[str, list[str]]:
    """{step: the blocking checks its tables failed (none: passed), or [UNFINISHED]} of the
    steps that recorded their checks in this lake (none in a lake written by a release before
    2026-12-05, which did not record them)."""
    path = _checks_path(lake)
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def record_checks(lake: Path, step: str, failed: list[str]) -> None:
    """Record the blocking checks `step`'s tables failed (none: they passed), replacing what
    it recorded before; written under another name and renamed into place."""
    path = _checks_path(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    recorded = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    recorded[step] = list(failed)
    write_json(path, recorded, indent=1)


def write_json(path: Path, record: Mapping[str, Any], **dumps: Any) -> None:
    """`record` as JSON at `path`, replaced whole: written under another name and renamed
    into place, so a reader never finds half of it (`dumps`: json.dumps' options)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temporary.write_text(json.dumps(record, sort_keys=True, **dumps), encoding="utf-8")
    os.replace(temporary, path)


def current_folder(lake: Path | str, name: str) -> Path | None:
    """The folder of the table `name`'s current write (`<schema>.<table>`), None when the lake
    has no write of it."""
    table = Path(lake) / "tables" / name
    pointer = table / CURRENT
    return table / pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None


def current_files(lake: Path | str, name: str) -> str:
    """The Parquet files of the table `name`'s current write, as a glob DuckDB's `read_parquet`
    takes: the table's folder holds earlier writes too until the next publish
    (`prune_superseded`), which a glob over every write would count again."""
    folder = current_folder(lake, name)
    if folder is None:
        raise FileNotFoundError(f"{Path(lake) / 'tables' / name}: no write of {name} in this lake")
    return str(folder / "*.parquet")


def prune_superseded(lake: Path) -> tuple[int, int]:
    """Delete every write of every table but its current one (`_current`), and the pointer
    files a stopped write left: each write goes to a new folder, and the earlier ones were
    kept until the lake was cleaned, a full copy of the tables per run (a review: two runs with
    nothing new took the sample's tables from 3.0 to 8.6 MB). Run under the lake's run lock
    after the publish, which has copied what it needs: no step reads a table's earlier writes
    (`restore` registers the current ones). Returns (folders deleted, bytes freed)."""
    deleted = freed = 0
    for pointer in sorted((Path(lake) / "tables").glob(f"*.*/{CURRENT}")):
        current = pointer.read_text(encoding="utf-8").strip()
        for entry in pointer.parent.iterdir():
            if entry.name in (CURRENT, current):
                continue
            if entry.is_dir() and not entry.is_symlink():
                freed += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                shutil.rmtree(entry, ignore_errors=True)
                deleted += 1
            elif entry.name.startswith(".current."):  # a pointer a stopped write left
                entry.unlink(missing_ok=True)
    return deleted, freed


class SparkTables:
    """The lake's working tables in one Spark session."""

    def __init__(self, spark, lake: Path):
        self.spark = spark
        self.lake = Path(lake)
        (self.lake / "tables").mkdir(parents=True, exist_ok=True)

    def ensure_schema(self, schema: str) -> None:
        self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {_identifier(schema)}")

    def save(self, name: str, frame) -> Path:
        """Write `frame` as the table `schema.name` (a new folder), and register it."""
        schema, table = name.split(".")
        self.ensure_schema(schema)
        folder = self.lake / "tables" / f"{schema}.{table}" / uuid.uuid4().hex
        frame.write.mode("error").parquet(str(folder))
        self._register(f"{schema}.{table}", folder)
        # which folder is the table's now, for a later session (`restore`); renamed into place
        pointer = folder.parent / f".current.{folder.name}"
        pointer.write_text(folder.name, encoding="utf-8")
        os.replace(pointer, folder.parent / CURRENT)
        return folder

    def _register(self, name: str, folder: Path) -> None:
        """Point the table `name` at the Parquet files of `folder`, with the schema Spark wrote
        in their footer: Spark would read that footer in a job of its own (one job per table)."""
        self.drop(name)
        schema = written_schema(folder)
        self.spark.catalog.createTable(name, path=str(folder), source="parquet", schema=schema)

    def restore(self) -> list[str]:
        """Register every table of the lake in this session (a step that runs on its own, or a
        new session, finds the tables the earlier steps wrote). Returns their names."""
        names = []
        for pointer in sorted((self.lake / "tables").glob(f"*.*/{CURRENT}")):
            name = pointer.parent.name
            self.ensure_schema(name.split(".")[0])
            self._register(name, pointer.parent / pointer.read_text(encoding="utf-8").strip())
            names.append(name)
        return names

    def drop(self, name: str) -> None:
        """Forget the table or view `name` (its files stay until `prune_superseded`)."""
        schema, table = name.split(".")
        if not self.spark.catalog.tableExists(name):
            return
        kind = "VIEW" if self.spark.catalog.getTable(name).tableType == "VIEW" else "TABLE"
        self.spark.sql(f"DROP {kind} {_identifier(schema)}.{_identifier(table)}")

    def remove(self, name: str) -> None:
        """Forget the table `name` and delete its files (every folder it was written to)."""
        self.drop(name)
        schema, table = name.split(".")
        shutil.rmtree(self.lake / "tables" / f"{schema}.{table}", ignore_errors=True)

    def table(self, name: str):
        return self.spark.table(name)

    def run(
        self,
        names: Iterable[str],
        macro_files: tuple[str, ...] = (),
        values: Mapping[str, Any] | None = None,
        types: Mapping[str, str] | None = None,
        before: Mapping[str, Callable[[], None]] | None = None,
        **identifiers: str,
    ):
        """Run the statements of `sql/<name>.sql` for each name, in order; returns the last
        query's DataFrame (None if the last statement wrote a table). `before[target]` runs
        just before the statement that writes `target` (a step SQL cannot do in Spark)."""
        result = None
        for name in names:
            for st in spark_sql.load_spark_sql(name, macro_files, **identifiers):
                if before and st.target in before:
                    before[st.target]()
                result = self.execute(st, values, types)
        return result

    def execute(self, st: "spark_sql.Statement", values=None, types=None):
        run = spark_sql.run
        describe(self.spark, f"{st.kind} {st.target}")
        if st.kind == "schema":
            self.ensure_schema(st.target)
            return None
        if st.kind == "view":
            self.ensure_schema(st.target.split(".")[0]) if "." in st.target else None
            run(self.spark, st.sql, values, types)
            return None
        if st.kind in ("create_table", "create_table_as"):
            self.save(st.target, run(self.spark, st.sql, values, types))
            return None
        if st.kind == "insert":
            new = run(self.spark, st.sql, values, types)
            old = self.spark.table(st.target)
            self.save(st.target, old.unionByName(new.select(*old.columns)))
            return None
        return run(self.spark, st.sql, values, types)


SPARK_SCHEMA_KEY = b"org.apache.spark.sql.parquet.row.metadata"  # ParquetReadSupport's key


def written_schema(folder: Path):
    """The Spark schema of the Parquet files Spark wrote in `folder`, from one file's footer,
    read here on the driver: what Spark's schema inference reads (the first data file's schema
    as Spark wrote it), without running a Spark job to read it. None (Spark infers it) when
    there is no such file or key."""
    import pyarrow.parquet as pq
    from pyspark.sql.types import StructType

    files = sorted(
        p for p in Path(folder).iterdir() if p.suffix == ".parquet" and p.name[0] not in "._"
    )
    if not files:
        return None
    text = (pq.read_metadata(files[0]).metadata or {}).get(SPARK_SCHEMA_KEY)
    return StructType.fromJson(_nullable(json.loads(text))) if text else None


def _nullable(node):
    """A schema's JSON with every field, element and value nullable: Spark reads files with
    their schema made nullable (`StructType.asNullable`), whatever the footer says."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        for flag in ("nullable", "containsNull", "valueContainsNull"):
            if flag in node:
                node[flag] = True
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


def describe(spark, text: str) -> None:
    """Name the Spark jobs that follow (Spark's UI and event log show it per job: where the
    time goes, `benchmarks/bench_spark.py`)."""
    spark.sparkContext.setJobDescription(text)


def _identifier(name: str) -> str:
    return "`" + spark_sql.checked_identifier(name) + "`"
