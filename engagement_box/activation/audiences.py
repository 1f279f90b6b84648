"""Audiences: who gets which engagement play, exported for the marketing tools.

Plays per RFM segment are built from the seed documents' tools of engagement (Magento, "The Rules
(and Tools) for Successful Customer Engagement": customer reviews and feedback, reward programs,
newsletters and wishlists, private sales and special offers, email offers and promotions,
giveaways and free samples, personalised recommendations) and the customer-engagement article's
advice to target each segment. The plays per CLV x CRV quadrant are Kumar's (METRICS.md): referral
incentives for CEV Affluents, purchase incentives for CEV Advocates, both for CEV Misers, retention
for CEV Champions, a review of the reward for CEV Costly Referrers.

Only customers with marketing consent are exported. CSV cells are neutralised against spreadsheet
formula injection (a cell starting with = + - @, a tab or a carriage return gets a leading single
quote), except a value that starts with + or - and holds nothing but letters, digits and . _ % + -
@ (a phone-number customer id `+447700900123`, an address `-jane@example.com`): it cannot call a
function or another program, and a quote would break the import tool's match on it (a review).
Parquet keeps the values as they are (typed data, not opened by spreadsheets).

Every audience of a kind has its files, a header alone when nobody is in it: a fixed-name import
found no file, and a loop over the files present kept yesterday's members targeted (a review).

No Dagster import here.
"""

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from engagement_box.engagement.metrics import QUADRANT_PLAYS, QUADRANTS
from engagement_box.value import rfm

# Every segment the RFM step gives (engagement_box.value.rfm), prospects (no completed order yet)
# included: each has its play (rfm.SEGMENT_PLAYS).
RFM_SEGMENTS = (*rfm.SEGMENTS, rfm.PROSPECT)

AUDIENCE_COLUMNS = ("customer_id", "email", "audience_kind", "audience", "play")
# The kinds of audience: each is a folder of the audience directory, the only ones a run or an
# erasure writes (with `_written_from.json`); anything else in the directory is left alone.
AUDIENCE_KINDS = ("rfm_segment", "quadrant")
# Every audience of each kind: each has its files in every folder written, empty or not.
AUDIENCES = {"rfm_segment": RFM_SEGMENTS, "quadrant": QUADRANTS}

# A cell starting with = + - @, a tab or a carriage return: a spreadsheet runs it as a formula
# (OWASP CSV injection).
_FORMULA_PATTERN = r"^[=+\-@\t\r]"
# ...except an inert one: + or - then only letters, digits and . _ % + - @ (no quote, bar,
# bracket, space or !, which a formula needs to call a function or another program). A
# spreadsheet shows `+447700900123` as a number; the file keeps the id exact for the import.
_INERT_PATTERN = r"^[+\-][A-Za-z0-9._%+\-@]*$"


def build_audiences(
    customers: pl.DataFrame,
    segments: pl.DataFrame | None = None,
    quadrants: pl.DataFrame | None = None,
    *,
    segment_column: str = "segment",
    quadrant_column: str = "quadrant",
) -> pl.DataFrame:
    """One row per consenting customer and audience (an RFM segment and/or a quadrant).

    customers: customer_id, email, marketing_consent. segments: customer_id + segment_column.
    quadrants: customer_id + quadrant_column. Customers without consent (or with NULL consent)
    are left out. Columns: customer_id, email, audience_kind ('rfm_segment' | 'quadrant'),
    audience, play; sorted by audience_kind, audience, customer_id.
    """
    # Sorted once by id and joined keeping that order, then each kind sorted by its audience
    # alone (an ENUM of its few names, stable): the same rows and order as sorting the whole
    # frame by kind, audience and id, in 0.39 CPU-s instead of 0.84-0.91 (1.15M rows, 1M
    # customers).
    consenting = (
        customers.filter(pl.col("marketing_consent").fill_null(False))
        .select("customer_id", "email")
        .sort("customer_id")
    )
    parts = {}
    for frame, column, kind, plays in (
        (segments, segment_column, AUDIENCE_KINDS[0], rfm.SEGMENT_PLAYS),
        (quadrants, quadrant_column, AUDIENCE_KINDS[1], QUADRANT_PLAYS),
    ):
        if frame is None:
            continue
        part = consenting.join(
            frame.select("customer_id", pl.col(column).cast(pl.String).alias("audience")).filter(
                pl.col("audience").is_not_null()
            ),
            on="customer_id",
            how="inner",
            maintain_order="left",
        )
        names = pl.Enum(part["audience"].unique().sort())
        parts[kind] = (
            part.sort(pl.col("audience").cast(names), maintain_order=True)
            .with_columns(
                pl.lit(kind).alias("audience_kind"),
                pl.col("audience")
                .replace_strict(dict(plays), default=None, return_dtype=pl.String)
                .alias("play"),
            )
            .select(AUDIENCE_COLUMNS)
        )
    if not parts:
        return pl.DataFrame(schema=dict.fromkeys(AUDIENCE_COLUMNS, pl.String))
    return pl.concat(parts[kind] for kind in sorted(parts))


def neutralize_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix a single quote to string cells that a spreadsheet would run as a formula."""
    string_cols = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA_PATTERN) & ~pl.col(c).str.contains(_INERT_PATTERN))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in string_cols
    )


def write_audiences(frame: pl.DataFrame, out_dir: Path, name: str = "audiences") -> dict[str, Path]:
    """Write `<name>.csv` (formula-neutralised) and `<name>.parquet` into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{name}.csv"
    parquet_path = out_dir / f"{name}.parquet"
    neutralize_formulas(frame).write_csv(csv_path)
    frame.write_parquet(parquet_path)
    return {"csv": csv_path, "parquet": parquet_path}


def file_stem(audience: str) -> str:
    """The file name of an audience: lower case, runs of other characters as one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", audience.lower()).strip("_")


def _same_file_names(audiences: dict[str, tuple[str, ...]]) -> list[str]:
    """Audiences of one kind whose files would have the same name (`file_stem`): "At Risk" and
    "At-Risk" both write at_risk.csv, and the second replaced the first's rows without a word
    (a review renaming a segment)."""
    clashes = []
    for kind, names in audiences.items():
        by_stem: dict[str, list[str]] = {}
        for name in names:
            by_stem.setdefault(file_stem(name), []).append(name)
        clashes += [f"{kind}: {' and '.join(n)}" for n in by_stem.values() if len(n) > 1]
    return clashes


_CLASHES = _same_file_names(AUDIENCES)
if _CLASHES:  # a segment map edited so: refused when the code loads
    raise ValueError(
        f"audiences that would write the same file: {_CLASHES}; name them "
        "apart by a letter or digit (engagement_box/value/rfm.py SEGMENT_RULES, "
        "engagement_box/engagement/quadrants.py)"
    )


def without_play(frame: pl.DataFrame) -> list[str]:
    """The audiences of `frame` (`build_audiences` rows) that have no play: names this code's
    segment or quadrant map does not have, from a version computed under an earlier release's
    names ("<kind>/<audience>", sorted)."""
    missing = frame.filter(pl.col("play").is_null()).select("audience_kind", "audience").unique()
    return sorted(f"{kind}/{name}" for kind, name in missing.iter_rows())


def without_play_message(names: list[str]) -> str:
    """What the audience step says of `without_play`'s audiences: their files are written (a
    withdrawal of consent must still reach them), with no play, under the version's names."""
    return (
        f"the current version's audiences {', '.join(names)} have no play in this release's "
        "segment and quadrant maps (engagement_box/value/rfm.py SEGMENT_PLAYS): the version was "
        "computed under an earlier release's names. Their files are written under those names "
        "with an empty play, and this release's audiences of those customers are empty until a "
        "run (`engagement-box run`) publishes a version computed under the current names"
    )


def no_consent_message(snapshot_id: int | None, customers: int) -> str:
    """What the audience step says when no customer of the version has marketing consent: every
    file is empty, and a retailer exporting orders only saw that with no word (a review)."""
    return (
        f"no customer of version {snapshot_id} has marketing consent on record ({customers:,} "
        "customer profile(s)): every audience file holds its header only. Consent comes from the "
        "customers export's marketing_consent column, so a retailer without a customers export "
        "has none"
    )


# Which version the files of an audience folder come from, written after them: a run that
# computes nothing new (`work/version_inputs`) checks it before it skips the audiences.
WRITTEN_FROM = "_written_from.json"


def record_version(
    out_dir: Path,
    snapshot_id: int | None,
    as_of: date | None = None,
    files: Mapping[str, Mapping] | None = None,
    engine: str = "duckdb",
    written_for: Path | str | None = None,
    consent: Mapping | None = None,
) -> None:
    """Write `<out_dir>/_written_from.json`: the version the folder's files come from, its
    as-of date (the day the segments and values describe), for whoever picks the files up, the
    files written (`export_audiences`' result: `missing_files` looks for them), the engine
    whose versions they are (the two engines number theirs apart) and the working database or
    lake they were written for (`written_for`: an erase rewrites a folder it remembers only
    while that one wrote it last, `remembered_folders`), and the consent they were written with
    (`consent`: {"consenting", "digest"} of the consenting persons, `recorded_consent`)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    record = {
        "snapshot_id": snapshot_id,
        "as_of": as_of.isoformat() if as_of else None,
        "engine": engine,
        "written_at": _now(),
    }
    if written_for is not None:
        record["for"] = owner_token(written_for)
    if consent is not None:
        record["consent"] = dict(consent)
    if files is not None:
        record["files"] = sorted(
            Path(path).relative_to(out_dir).as_posix()
            for written in files.values()
            for key, path in written.items()
            if key != "rows"
        )
    _write_record(Path(out_dir), record)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_record(out_dir: Path, record: dict) -> None:
    """`_written_from.json` written whole: a temporary name, then a rename (a reader never
    finds half a record)."""
    partial = out_dir / f".{WRITTEN_FROM}.{os.getpid()}.tmp"
    partial.write_text(json.dumps(record) + "\n")
    os.replace(partial, out_dir / WRITTEN_FROM)


def record_rewritten(out_dir: Path) -> None:
    """After an erasure rewrote files of `out_dir`: its record's `written_at` moves, so an
    importer that takes a folder it has not taken yet (by `written_at`, not by the version, which
    stays) takes the files without the person (a review: the version alone did not change)."""
    record = _record(out_dir)
    if record:
        _write_record(Path(out_dir), {**record, "written_at": _now()})


def follow_consent(out_dir: Path, before: Mapping | None, after: Mapping | None) -> bool:
    """After an erasure took a person out of `out_dir`'s files: the consent the record says the
    files follow moves from `before` to `after` (the consent of now before and after the
    erasure), so the next run does not take the person's leaving for a change of consent and
    write the files again. Only a record that followed `before`: one already behind stays
    behind, for the next run to write. Whether it moved."""
    record = _record(out_dir)
    if not record or before is None or after is None or before == after:
        return False
    if record.get("consent") != dict(before):
        return False
    _write_record(Path(out_dir), {**record, "consent": dict(after)})
    return True


# Where each engine remembers the audience folder it last wrote: beside the DuckDB working
# database (`<working>.audiences.json`) and in the Spark lake (`<lake>/marts/_audiences.json`).
# An erasure rewrites every remembered folder: each engine has its own (README), and an erase
# that knew only ENGAGEMENT_AUDIENCE_DIR left the person in the other's files (a review).
FOLDER_RECORD_SUFFIX = ".audiences.json"
LAKE_FOLDER_RECORD = "_audiences.json"


def folder_records(working: Path | str | None, lake: Path | str | None) -> list[tuple[Path, Path]]:
    """The files in which the DuckDB engine (working database `working`) and the Spark engine
    (`lake`) remember their audience folders, each with what it belongs to."""
    records = []
    if working:
        records.append((Path(f"{working}{FOLDER_RECORD_SUFFIX}"), Path(working)))
    if lake:
        records.append((Path(lake) / "marts" / LAKE_FOLDER_RECORD, Path(lake)))
    return records


def owner_token(owner: Path | str) -> str:
    """What `_written_from.json` says of the working database or lake a folder was written for:
    a hash of its real path, not the path (the file sits beside files handed to others)."""
    return hashlib.sha256(os.path.realpath(owner).encode()).hexdigest()[:16]


def _read_record(record: Path) -> tuple[str, list[str]] | None:
    """(the real path it was written for, the folders) of a `remember_folder` record; None when
    it is missing, unreadable or hand-edited out of shape."""
    try:
        remembered = json.loads(Path(record).read_text())
        owner, folders = remembered["for"], remembered["folders"]
        if not isinstance(owner, str) or not all(isinstance(f, str) for f in folders):
            return None
        return owner, list(folders)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remember_folder(record: tuple[Path, Path], out_dir: Path) -> None:
    """Remember (`folder_records`' record) that this engine wrote audience files to `out_dir`,
    with the folders it wrote before (ENGAGEMENT_AUDIENCE_DIR may change between runs, and the
    old folder keeps its files), for the working database or lake it is: a copy of the warehouse
    elsewhere does not take the original's folders for its own. A record that cannot be read
    starts again. Written under another name and renamed into place."""
    path, owner = record
    owner = os.path.realpath(owner)
    folder = os.path.realpath(out_dir)
    earlier = _read_record(path)
    listed = earlier[1] if earlier and earlier[0] == owner else []
    folders = [f for f in listed if f != folder] + [folder]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps({"for": owner, "folders": folders}) + "\n")
    os.replace(temporary, path)


def written_for_other(folder: Path, owners: Iterable[Path | str]) -> bool:
    """Whether `folder`'s files were last written for a working database or lake other than
    `owners` (its `_written_from.json`): each export rewrites a folder whole, so such a folder
    holds the other's people, not these owners'. False when the file is missing, unreadable or
    from a release before it named its owner (nothing says it is another's)."""
    try:
        last = json.loads((Path(folder) / WRITTEN_FROM).read_text()).get("for")
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(last, str):
        return False
    if os.sep in last:  # a path, as a build between two commits of 2026-12-05 wrote it
        return os.path.realpath(last) not in {os.path.realpath(o) for o in owners}
    return last not in {owner_token(o) for o in owners}


def written_ahead(folder: Path, owner: Path | str, known: set[int]) -> str | None:
    """What is said when `folder`'s files were written for `owner` from a version its working
    database has no record of (`known`: every version it ever published): the database is
    older than the files, a backup restored, and with the backup's register of erased people
    too nothing else tells that people were erased since (a re-review: the next run wrote them
    back into the files, silently). None otherwise."""
    if written_for_other(folder, [owner]):
        return None
    written = recorded_version(folder)
    if written is None or written in known:
        return None
    return (
        f"the audience files in {folder} were written from version {written}, which {owner} "
        "has no record of (a backup restored?): they are left as they are, since the people "
        "erased after the backup would go back into them. If today's register of erased "
        "people is beside the working database and `engagement-box erase --from-register` has "
        f"erased them again, delete {folder / WRITTEN_FROM} and run again to have the files "
        "written from this database. If the backup's register was restored with it, put "
        "today's back first; without it, erase again every request made since the backup, "
        "then delete that file (docs/OPERATIONS.md, \"Restoring a backup: keep today's "
        'register")'
    )


def replacing_another_owners(folder: Path, owner: Path | str) -> str | None:
    """What a run about to rewrite `folder` for `owner` (a working database or lake) says when
    the folder's files were last written for another one, or for this one at another path
    (copied or moved): it replaces them, and two warehouses or lakes given one folder replace
    each other's files on every run. None otherwise."""
    if not written_for_other(folder, [owner]):
        return None
    return (
        f"the audience folder {folder} (ENGAGEMENT_AUDIENCE_DIR) was last written for another "
        "warehouse or Spark lake, or for this one at another path: this run replaces its files. "
        "Two warehouses or lakes sharing one folder replace each other's audiences on every "
        "run; give each its own folder"
    )


def remembered_folders(
    records: Iterable[tuple[Path, Path]],
) -> tuple[list[Path], dict[str, str]]:
    """The audience folders remembered in `records` (`folder_records`) that still exist, and
    those passed over, each with why: remembered for another path (the warehouse or lake was
    copied or moved: its next run there remembers its folders again)."""
    folders, passed = [], {}
    for path, owner in records:
        recorded = _read_record(path)
        if recorded is None:  # never written (no audience step yet), or unreadable
            continue
        written_for, listed = recorded
        if written_for != os.path.realpath(owner):
            for folder in listed:
                passed[folder] = (
                    f"remembered for {written_for}, not {os.path.realpath(owner)} (copied or "
                    "moved: the next run there remembers its folders again)"
                )
            continue
        folders += [Path(f) for f in listed if Path(f).is_dir()]
    return folders, passed


def missing_files(out_dir: Path) -> list[str]:
    """The audience files `record_version` recorded that are no longer in `out_dir` (someone
    moved or deleted them in a shared folder), as paths relative to it; none where the record
    lists no files (written before they were recorded: then a kind's missing folder counts)."""
    record = _record(out_dir)
    if not record:
        return []
    listed = record.get("files")
    if not isinstance(listed, list):
        return [kind for kind in AUDIENCE_KINDS if not (Path(out_dir) / kind).is_dir()]
    return [name for name in listed if not (Path(out_dir) / name).is_file()]


def _record(out_dir: Path) -> dict:
    """`record_version`'s record of the folder ({} when there is none, or it is unreadable)."""
    try:
        record = json.loads((Path(out_dir) / WRITTEN_FROM).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def recorded_version(out_dir: Path, engine: str = "duckdb") -> int | None:
    """The version of `engine` that `record_version` wrote for the folder, or None (no record,
    unreadable, or another engine's: a record from before engines were named is DuckDB's)."""
    record = _record(out_dir)
    if record.get("engine", "duckdb") != engine:
        return None
    try:
        return int(record["snapshot_id"])
    except (KeyError, ValueError, TypeError):
        return None


def recorded_consent(out_dir: Path) -> dict | None:
    """The consent `record_version` wrote the folder's files with, or None (none recorded)."""
    consent = _record(out_dir).get("consent")
    return consent if isinstance(consent, dict) else None


def export_audiences(frame: pl.DataFrame, out_dir: Path) -> dict[str, dict]:
    """Every audience of `frame` (`build_audiences` rows) as `<out_dir>/<kind>/<audience>.csv`
    and `.parquet`, each kind's folder rebuilt whole (a customer who withdrew consent or was
    erased leaves every file). Returns {"<kind>/<audience>": {"rows", "csv", "parquet"}}."""
    parts = (part for _, part in frame.group_by("audience_kind", "audience", maintain_order=True))
    return export_audience_parts(parts, out_dir)


def export_audience_parts(parts: Iterable[pl.DataFrame], out_dir: Path) -> dict[str, dict]:
    """`export_audiences` from one frame per audience, written as each arrives (so only one
    audience's rows need to be in memory).

    Only the folders of `AUDIENCE_KINDS` and the version record are replaced; other files in
    `out_dir` (a shared folder) stay. Each kind is written beside its folder first
    (`.<kind>.building`) and swapped in, so a reader finds a kind's old files or its new ones,
    never half; the version record is removed first and written by `record_version` after."""
    out_dir = Path(out_dir)
    building = {kind: out_dir / f".{kind}.building" for kind in AUDIENCE_KINDS}
    try:
        return _export_audience_parts(parts, out_dir, building)
    except (OSError, pl.exceptions.ComputeError) as error:
        # A full disk said only "No space left on device (os error 28)", naming no path, and
        # left the half-built folder taking the space (a review); polars' writers raise it as
        # a ComputeError (a re-review).
        if isinstance(error, pl.exceptions.ComputeError) and "os error" not in str(error):
            raise
        for path in building.values():
            remove_leftover(path)
        if isinstance(error, OSError):
            why = f"{error.strerror or error}{f' ({error.filename})' if error.filename else ''}"
        else:
            why = str(error).strip().splitlines()[0]
        raise AudienceWriteError(
            f"the audience files could not be written in {out_dir}: {why}; free space or fix "
            "the folder's permissions, then run again (the published version is not affected; "
            f"until {WRITTEN_FROM} is back, the folders there may hold different versions)"
        ) from error


def remove_leftover(path: Path) -> None:
    """Delete what is at `path`, a folder tree or a file: a leftover `.<kind>.building` or
    `.<kind>.old`. A file there (one put at a kind's place, moved aside by a swap) used to
    stay, as `rmtree` leaves files, and every later swap failed renaming the folder onto it."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


class AudienceWriteError(OSError):
    """The audience folder could not take the files; the message names it and what to do."""


def _export_audience_parts(
    parts: Iterable[pl.DataFrame], out_dir: Path, building: dict[str, Path]
) -> dict[str, dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / WRITTEN_FROM).unlink(missing_ok=True)  # the files are no version's until swapped
    for path in building.values():
        remove_leftover(path)
        path.mkdir()
    files = {}

    def write(kind: str, audience: str, part: pl.DataFrame) -> None:
        paths = write_audiences(part, building[kind], name=file_stem(audience))
        files[f"{kind}/{audience}"] = {
            "rows": part.height,
            **{k: str(out_dir / kind / v.name) for k, v in paths.items()},
        }

    for part in parts:
        first = part.row(0, named=True)
        kind, audience = str(first["audience_kind"]), str(first["audience"])
        if kind not in building:
            raise ValueError(f"unknown audience kind {kind!r}; expected one of {AUDIENCE_KINDS}")
        write(kind, audience, part)
    empty = pl.DataFrame(schema=dict.fromkeys(AUDIENCE_COLUMNS, pl.String))
    for kind, names in AUDIENCES.items():  # nobody in it today: its files say so
        for audience in names:
            if f"{kind}/{audience}" not in files:
                write(kind, audience, empty)
    for kind, new in building.items():
        final, old = out_dir / kind, out_dir / f".{kind}.old"
        remove_leftover(old)
        if final.exists() or final.is_symlink():
            os.replace(final, old)
        os.replace(new, final)
        remove_leftover(old)
    return files
