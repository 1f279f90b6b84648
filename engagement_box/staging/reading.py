"""Export files as the ingest reads them: found in a source's folder (`discover_files`), each
checked from its first bytes or its Parquet footer before any table changes (`check_headers`),
then read as text, row by row, with every problem that makes a row's fields untrustworthy
found and named (`read_raw`): an encoding, a separator, a quote inside a value, a row running
over a line, a repeated header, a short row.

A file that cannot be taken in raises `IngestError` naming it (and its line or column); a
message that quotes the file masks the emails and handles in it (`privacy.masked_text`). The
parsing of values and the contract's checks are `staging/validation.py`; the staging
transaction is `staging/ingestion.py`. No Dagster import.
"""

import codecs
import csv
import functools
import hashlib
import io
import os
import re
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from engagement_box.governance import privacy
from engagement_box.sql import first_line
from engagement_box.staging.contracts import (
    INVISIBLE_PATTERN,
    ROW_PROBLEM,
    IngestError,
    Source,
)
from engagement_box.staging.validation import NULL_TEXTS, parse_column

SUPPORTED_SUFFIXES = (".csv", ".parquet")

# The start of a CSV file read to check its encoding and header. A header row longer than
# this (a wide export of thousands of custom attributes) is read on, up to HEADER_MAX_BYTES.
HEAD_BYTES = 1 << 16
HEADER_MAX_BYTES = 1 << 26
SHOWN_COLUMNS = 10  # ignored columns named in a warning (a wide export has thousands)
# C0 and C1 control characters (a line break, a tab, ESC of a terminal's escape sequence, BEL):
# a file name holding one is refused, and the CLI shows them escaped.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A file with more columns is refused before its rows are read: no export of a shop, review,
# social or referral system is this wide, and checking a header costs time in its width (a
# security review's 1M-column header of 14 MB held the run lock for over 400 s; 10,000 names
# take 0.5 s).
MAX_COLUMNS = 10_000

# Python's csv module refuses a field longer than 131,072 characters by default ("field larger
# than field limit"), which failed the whole step on a valid export with a long quoted review.
# Its readers here only count fields and read headers: any length polars reads is accepted.
csv.field_size_limit(2**31 - 1)


@dataclass(frozen=True)
class ExportFile:
    """One export file as found in its source's folder: where it is (`relpath` from the export
    folder, as the staged rows name it) and its stat when found."""

    source: str
    path: Path
    relpath: str
    size_bytes: int
    mtime_ns: int
    ctime_ns: int

    @property
    def stat(self) -> tuple[int, int, int]:
        """What tells the same file without reading it (`staging.ingested_files`)."""
        return (self.size_bytes, self.mtime_ns, self.ctime_ns)


# ----------------------------------------------------------------------------------------------
# Files


# Files a desktop leaves beside exports: Excel's lock file of an open workbook (`~$name.csv`),
# Windows' thumbnail cache and folder settings. Never exports: ignored like hidden files.
DESKTOP_FILES = ("thumbs.db", "desktop.ini")


def _walk(folder: Path) -> Iterator[Path]:
    """Every entry under `folder` that is not a folder, following linked folders (a link to an
    archive folder is read as a subfolder is; each real folder once, so a link loop ends)."""
    seen: set[str] = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in names:
            yield Path(root) / name


def discover_files(data_dir: Path, source: Source) -> list[ExportFile]:
    """The export files of a source, in path order, in its folder and subfolders (linked ones
    too). Hidden files (`.name`), Excel's lock files (`~$name`) and `DESKTOP_FILES` are ignored;
    a link to nothing, a name that is not UTF-8 and a file of another type are refused: every
    one of them in one error (`RefusedNames`; the ingest adds the other files' refusals), so a
    sender fixes them all at once: the first `.crdownload` hid a `.part` and two files in other
    encodings, one run each (a review)."""
    folder = Path(data_dir) / source.name
    if not folder.is_dir():
        return []
    files = []
    refused: list[IngestError] = []
    for path in sorted(_walk(folder)):
        rel = path.relative_to(data_dir).as_posix()
        if any(part.startswith((".", "~$")) for part in path.relative_to(folder).parts):
            continue
        if path.name.lower() in DESKTOP_FILES:
            continue
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:  # a name from another system's encoding (a zip from Windows)
            shown = os.fsencode(rel).decode("utf-8", errors="replace")
            refused.append(
                IngestError(
                    f"{shown}: the file name is not UTF-8 text (written in another system's "
                    "encoding, e.g. unzipped from a Windows archive); rename the file"
                )
            )
            continue
        if CONTROL_CHARACTER.search(rel):  # a line break, a terminal's escape sequence
            refused.append(
                IngestError(
                    f"{printable(rel)}: the file name holds a control character (a line break, "
                    "an escape): messages would show it garbled or act on it; rename the file"
                )
            )
            continue
        if not path.is_file():
            if path.is_symlink() and not path.exists():
                refused.append(
                    IngestError(f"{rel}: a link to a file that is not there ({os.readlink(path)})")
                )
            continue  # a socket, a pipe: not a file anyone exported
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            refused.append(
                IngestError(
                    f"{rel}: unsupported file type {path.suffix or '(none)'!r}; "
                    f"exports must be {' or '.join(SUPPORTED_SUFFIXES)}"
                )
            )
            continue
        stat = path.stat()
        files.append(
            ExportFile(source.name, path, rel, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        )
    if refused:
        raise RefusedNames(refused, files, source)
    return files


class RefusedNames(IngestError):
    """The files of a source refused by their names alone (`discover_files`), all in one
    message; `files` are the others, which `explained` reads for their own refusals."""

    def __init__(self, refused: list[IngestError], files: list[ExportFile], source: Source):
        self.refused, self.files, self.source = refused, files, source
        super().__init__(str(refused_error([str(error) for error in refused], source)))

    def explained(self, taken_in_as_they_are: frozenset[str] = frozenset()) -> IngestError:
        """One error naming the files refused by name and the other files refused for their
        header or rows (read whole: for a run that fails anyway), as `check_headers` with
        `rows` names them; but not the files `taken_in_as_they_are` (paths of files staged
        before, unchanged): a stray `.part` beside a year of exports read them all."""
        read = [e for e in self.files if e.relpath not in taken_in_as_they_are]
        refused, _, passed = _headers(read, self.source)
        return all_refused([*self.refused, *refused], passed, self.source)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def lacks_last_line_end(path: Path) -> bool:
    """True when a CSV file's last byte is not a line end: a file copied while it was still
    being written ends mid-line (a whole export from most tools ends with one)."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) not in (b"\n", b"\r")


def _unreadable(export: ExportFile, problem: str) -> IngestError:
    return IngestError(f"{export.relpath}: unreadable {export.path.suffix} file: {problem}")


def _plain(exc: Exception) -> str:
    """A library's error message without the hints that follow it (options a user cannot set)."""
    return first_line(exc).rstrip(".")


def _columns(
    export: ExportFile, names: list[str], source: Source
) -> tuple[dict[str, str], list[str]]:
    """Header names as read -> contract names, and the names the contract does not know.

    A name is matched as its column's name whatever its case, and with spaces, hyphens or dots
    between its words (`Social Handles`, `converted-at`) or none (`E-Mail`, `CustomerID`): an
    export tool's header variant of an optional column was otherwise ignored, and every value
    of it lost without a word. A header that also names the column itself keeps it, and the
    variant is an extra column.

    Raises `IngestError` naming the file if a name repeats (exactly, or in another case or with
    other spaces, or two variants of one column) or a required column is missing. The names the
    contract does not know are returned as the file writes them, emails and handles masked:
    they go to Dagster's metadata and the run's warnings, and a file without its header row
    names its first row's values.
    """
    # A name quoted after the separator's space (`order_id, "customer_id"`) is its name; the
    # characters that show as nothing (`email` with a zero-width space) are not part of it.
    basic = [_unquoted_name(re.sub(INVISIBLE_PATTERN, "", c).strip()).lower() for c in names]
    # Columns without a name (Excel's trailing empty columns `...,channel,,,`) are ignored, however
    # many: polars names the second and later ones `_duplicated_<n>`.
    unnamed = {c for c in basic if not c or _UNNAMED.fullmatch(c)}
    # `social handles` -> `social_handles`; `e-mail`, `customerid` -> the column whose name
    # without its underscores they write (`email`, `customer_id`: no two columns of a source
    # are one name so, a test holds it).
    joined = [_variant_of(c, source) for c in basic]
    # A variant names a contract column the header does not also name exactly.
    variants = {j for c, j in zip(basic, joined, strict=True) if c != j and j in source.columns}
    variants -= set(basic)
    cleaned = [j if j in variants else c for c, j in zip(basic, joined, strict=True)]
    # Counted once: `list.count` per name took the square of a wide header's width (a security
    # review's 1M-column header held the run lock for hours).
    counts = Counter(cleaned)
    repeated = sorted({c for c, n in counts.items() if n > 1} - unnamed)
    if repeated:
        raise IngestError(
            f"{export.relpath}: repeated column(s) {privacy.masked_text(', '.join(repeated))}: "
            "the header names each column once"
        )
    renamed = dict(zip(names, cleaned, strict=True))
    missing = [c for c in source.required_columns if c not in renamed.values()]
    if missing:
        separated = next(
            (
                f"; the header is one name holding {said}: exports are comma-separated (Excel: "
                'save as "CSV UTF-8 (Comma delimited)")'
                for separator, said in _OTHER_SEPARATORS.items()
                if len(names) == 1 and separator in names[0]
            ),
            "",
        )
        named = [n for n, c in zip(names, cleaned, strict=True) if c not in unnamed]
        if named and not separated and not set(cleaned) & set(source.columns):
            # No name is a column of the contract: the first line is likely a row of a file
            # without its header line, a customer's name, phone and address, which the run's
            # log would keep for good (a security review): not shown.
            found = (
                f"none of its {len(named):,} names is a column of {source.name}: if the file "
                "has no header line, add one; its first line is not shown, as it may be a row "
                "of personal data"
            )
        elif named:
            # As the file writes them (`orderId` is what to look for in the export's settings),
            # without the columns that have no name, which are ignored; a wide export names the
            # first SHOWN_COLUMNS and how many there are.
            shown = ", ".join(
                printable(_shown(n.strip().replace("\n", " "), limit=120))
                for n in named[:SHOWN_COLUMNS]
            )
            if len(named) > SHOWN_COLUMNS:
                shown += f", ... ({len(named):,} in all)"
            found = f"found: {privacy.masked_text(shown)}"
        else:
            found = "found: no header"
        raise IngestError(
            f"{export.relpath}: missing required column(s) {', '.join(missing)} ({found})"
            f"{separated}"
        )
    ignored = [n for n, c in renamed.items() if c not in source.columns and c not in unnamed]
    return renamed, [printable(privacy.masked_text(n)) for n in ignored]


def printable(name: str) -> str:
    """Text from an export as a message or a preview shows it: a tab, a line break or another
    unprintable character escaped (`a\\nb`), so a file's header cannot start a line of its own
    in the run's log (a review)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


_UNNAMED = re.compile(r"_duplicated_\d+")


def _variant_of(name: str, source: Source) -> str:
    """A lower-case header name as its contract column's name where it writes that name with
    other separators (`social handles`, `converted-at`) or none (`e-mail`, `customerid`, from
    `CustomerID`); otherwise with its runs of separators as `_`."""
    joined = _SEPARATORS.sub("_", name)
    if joined in source.columns:
        return joined
    squeezed = _SQUEEZED.sub("", name)
    return next((c for c in source.columns if c.replace("_", "") == squeezed), joined)


def _unquoted_name(name: str) -> str:
    """A trimmed header name without the quotes a header written `, "customer_id"` leaves on it
    (no contract column's name holds a quote)."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"').strip()
    return name


# Separators other tools write between values, as a header read with commas shows them.
_OTHER_SEPARATORS = {";": "';'", "\t": "tabs (a tab-separated file)", "|": "'|'"}
_SEPARATORS = re.compile(r"[\s\-.]+")
_SQUEEZED = re.compile(r"[\s\-._]+")


def _foreign_encoding(head: bytes) -> str | None:
    """The name of the encoding the start of a file is in, when it is not UTF-8 text."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    # UTF-16 without a BOM: every other byte of its Latin letters is NUL (one stray NUL in
    # UTF-8 text is named with its line instead: `_nul_problem`)
    if head and head.count(b"\x00") * 10 >= len(head):
        return "UTF-16 or binary data (it holds NUL bytes)"
    return None


def _nul_problem(export: ExportFile, line: int) -> IngestError:
    return _unreadable(
        export,
        f"line {line} holds a NUL byte (\\0), which no text value may hold (a damaged export, "
        "or a tool's padding); remove it and run again",
    )


# Files of another kind named `.csv`, by their first bytes: a compressed export or a Parquet
# file was refused as "UTF-16 or binary data" or "holds a NUL byte (a tool's padding)".
_OTHER_KINDS = {
    b"\x1f\x8b": "a gzip-compressed file (decompress it: gunzip)",
    b"PAR1": "a Parquet file (name it .parquet)",
    b"PK\x03\x04": "a ZIP archive, or an Excel workbook (.xlsx: save it as CSV UTF-8)",
    b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls: save it as CSV UTF-8)",
    b"BZh": "a bzip2-compressed file (decompress it)",
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file (decompress it)",
}


def _csv_header(export: ExportFile) -> list[str]:
    """The header names of a CSV file, from its first bytes, after checking they are UTF-8."""
    with export.path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    kind = next((said for magic, said in _OTHER_KINDS.items() if head.startswith(magic)), None)
    if kind:
        raise _unreadable(export, f"not CSV text: it is {kind}")
    encoding = _foreign_encoding(head)
    if encoding:
        raise _unreadable(
            export, f"the text is encoded as {encoding}; exports must be UTF-8 (save it as UTF-8)"
        )
    if not head:
        raise _unreadable(export, "the file is empty (0 bytes); a CSV export has a header row")
    if b"\x00" in head:
        raise _nul_problem(export, head[: head.index(b"\x00")].count(b"\n") + 1)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(head, final=len(head) < HEAD_BYTES)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise _unreadable(
            export, f"line {line} is not UTF-8 text; exports must be UTF-8 (save it as UTF-8)"
        ) from None
    if len(head) == HEAD_BYTES and not _header_ends_in(text):
        text = _long_header_text(export)
    if "\r" in text.split("\n", 1)[0].removesuffix("\r"):  # CR alone ends the header line
        raise _unreadable(
            export,
            'its lines end with CR alone (old Mac, Excel\'s "CSV (Macintosh)"); save it with LF '
            'or CRLF line endings (Excel: "CSV UTF-8")',
        )
    first = text.split("\n", 1)[0].strip().lower()
    if len(first) in (4, 5) and first.startswith("sep="):  # `sep=,` / `sep=;`, any separator
        raise _unreadable(
            export,
            f"its first line `{text.split(chr(10), 1)[0].strip()}` is Excel's separator hint, "
            "not the header row: remove that line (the header must be the first line)",
        )
    lines = io.StringIO(text)
    try:
        names = next(csv.reader(lines), [])
    except csv.Error as exc:
        raise _unreadable(export, f"the header row cannot be read as CSV ({exc})") from None
    if lines.tell() == len(text) and any("\n" in name for name in names) and _open_quote(text):
        # The header's row took every line of the file: a quote it opens never closes.
        raise _unreadable(
            export,
            'line 1 (the header row) opens a quote (") that is never closed, so the whole file '
            "reads as one header name; write header names without quotes, or each between two",
        )
    return names


def _open_quote(text: str) -> bool:
    """Whether CSV text ends inside a quoted value (a quote opened and never closed)."""
    try:
        for _ in csv.reader(io.StringIO(text), strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _header_ends_in(text: str) -> bool:
    """Whether the CSV text holds the whole first row: a line break outside quotes ends it."""
    lines = io.StringIO(text)
    try:
        next(csv.reader(lines), None)
    except csv.Error:
        return True  # read in full or not, the header is refused as unreadable
    return lines.tell() < len(text) or text.endswith("\n")


def _long_header_text(export: ExportFile) -> str:
    """The start of a CSV file whose header row is longer than HEAD_BYTES, up to the end of that
    row (read in growing pieces, as UTF-8); refused past HEADER_MAX_BYTES."""
    size = HEAD_BYTES
    with export.path.open("rb") as handle:
        while True:
            size *= 4
            handle.seek(0)
            head = handle.read(size)
            try:
                text = codecs.getincrementaldecoder("utf-8-sig")().decode(
                    head, final=len(head) < size
                )
            except UnicodeDecodeError as exc:
                line = head[: exc.start].count(b"\n") + 1
                raise _unreadable(
                    export,
                    f"line {line} is not UTF-8 text; exports must be UTF-8 (save it as UTF-8)",
                ) from None
            # (a file whose lines end with CR alone: Python's csv refuses the CR in the first
            # line, so `_header_ends_in` stops here and `_csv_header` says what it is)
            if len(head) < size or _header_ends_in(text):
                return text
            if size >= HEADER_MAX_BYTES:
                raise _unreadable(
                    export,
                    f"its header row is longer than {HEADER_MAX_BYTES // 2**20} MiB (a quote "
                    "opened and never closed, or no line breaks): the header must be one line",
                )


# Parquet types a contract type can be read from (their values are turned into text, then parsed
# like a CSV's). Anything else, nested types above all, refuses the file before it is read.
_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_FLOATS = (pl.Float16, pl.Float32, pl.Float64)
_TEXT = (pl.String, pl.Categorical, pl.Enum, pl.Null)
PARQUET_TYPES: dict[type[pl.DataType], tuple[type[pl.DataType], ...]] = {
    pl.String: (*_TEXT, *_INTEGERS),
    pl.Float64: (*_TEXT, *_INTEGERS, *_FLOATS, pl.Decimal),
    # decimals: a warehouse's NUMBER(38, 0) unload of an integer column
    pl.Int64: (*_TEXT, *_INTEGERS, *_FLOATS, pl.Decimal),
    pl.Datetime: (*_TEXT, pl.Datetime, pl.Date),
    pl.Date: (*_TEXT, pl.Date, pl.Datetime),
    pl.Boolean: (*_TEXT, pl.Boolean, *_INTEGERS, *_FLOATS),  # 1/0, 1.0/0.0 as in CSV
}
_CONTRACT_TYPE_NAMES = {  # what the contract wants, and the Parquet types it is read from
    pl.String: "text (write it as text or integers)",
    pl.Float64: "a number (write it as integers, floats, decimals or text)",
    pl.Int64: "an integer (write it as integers, whole floats or decimals, or text)",
    pl.Datetime: "a timestamp (write it as timestamps, dates or text)",
    pl.Date: "a date (write it as dates, timestamps or text)",
    pl.Boolean: "a boolean (write it as booleans, 1/0 integers or floats, or text)",
}


def _type_name(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Struct):
        return "nested records (a struct)"
    if isinstance(dtype, pl.List | pl.Array):
        return "lists"
    if isinstance(dtype, pl.Binary):
        return "binary data"
    return f"values of type {dtype}"


MAX_DECIMAL_DIGITS = 38  # polars' decimals, as Arrow's decimal128


def _check_parquet_types(
    export: ExportFile, schema: dict[str, pl.DataType], renamed: dict[str, str], source: Source
) -> None:
    """Refuse a Parquet file whose column has a type its contract column cannot be read from."""
    wanted = source.dtypes
    for name, dtype in schema.items():
        column = renamed[name]
        if column not in wanted:
            continue  # ignored column
        contract = wanted[column].base_type()
        if dtype.base_type() not in PARQUET_TYPES[contract]:
            raise IngestError(
                f"{export.relpath}: column {column} holds {_type_name(dtype)}; "
                f"the contract wants {_CONTRACT_TYPE_NAMES[contract]}"
            )
        digits = getattr(dtype, "precision", None)
        if isinstance(dtype, pl.Decimal) and digits is not None and digits > MAX_DECIMAL_DIGITS:
            # polars reads at most 38 digits: the file was called "damaged"
            raise IngestError(
                f"{export.relpath}: column {column} holds decimals of {digits} digits; the "
                f"ingest reads at most {MAX_DECIMAL_DIGITS} (write them as decimals of "
                f"{MAX_DECIMAL_DIGITS} digits or fewer, or as floats)"
            )


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _unnamed_zones(path: Path) -> tuple[pa.Schema, dict[str, str]]:
    """The file's Arrow schema, and its timestamp columns whose time zone is no zone name (a
    fixed offset such as `+05:30`, which pandas writes for ISO text with that offset), with
    that zone: polars cannot read those (it panics), so `_parquet_schema` and `_read_parquet`
    read them through Arrow as the instants they are, in UTC, and `read_raw` writes them at
    their offset again (`_at_offset_as_text`)."""
    schema = pq.read_schema(path)
    odd = {
        f.name: f.type.tz
        for f in schema
        if pa.types.is_timestamp(f.type) and f.type.tz and f.type.tz not in _zone_names()
    }
    return schema, odd


def _in_utc(field: pa.Field) -> pa.Field:
    return field.with_type(pa.timestamp(field.type.unit, "UTC"))


def _parquet_schema(export: ExportFile) -> tuple[dict[str, pl.DataType], dict[str, str]]:
    """The file's columns as polars reads them, and its columns at an unnamed zone (for
    `_read_parquet`, so the footer is read once per use). A column name written twice is
    refused as a CSV header's is (polars' own error called the file damaged)."""
    path = export.path
    schema, odd = _unnamed_zones(path)
    _not_too_wide(export, len(schema))
    repeated = sorted(n for n, count in Counter(schema.names).items() if count > 1)
    if repeated:
        raise IngestError(
            f"{export.relpath}: repeated column(s) {', '.join(repeated)}: the file names each "
            "column once"
        )
    if not odd:
        # glob=False: polars reads `[`, `*` and `?` in a name as a pattern of file names (a
        # review: `orders/x[1].csv` staged the rows of `orders/x1.csv` under its name)
        return dict(pl.scan_parquet(path, glob=False).collect_schema()), odd
    utc = pa.schema([_in_utc(f) if f.name in odd else f for f in schema])
    return dict(pl.from_arrow(utc.empty_table()).schema), odd


def _read_parquet(path: Path, columns: list[str], odd: dict[str, str]) -> pl.DataFrame:
    if not odd.keys() & set(columns):
        return pl.read_parquet(path, columns=columns, glob=False)
    table = pq.read_table(path, columns=columns)
    for i, f in enumerate(table.schema):
        if f.name in odd:  # the same instants, labelled UTC (Arrow stores them in UTC)
            table = table.set_column(i, _in_utc(f), table.column(i).cast(_in_utc(f).type))
    return pl.from_arrow(table)


def check_header(export: ExportFile, source: Source) -> list[str]:
    """Fail (`IngestError` naming the file) if the file cannot be opened, is not UTF-8 text,
    repeats or misses a column, or (Parquet) has a column of a type its contract cannot take.

    Cheap (reads the first bytes or the Parquet footer only): run on every file before any table
    changes. Returns the names of columns the contract does not know.
    """
    if export.path.suffix.lower() == ".csv":
        try:
            names = _csv_header(export)
        except OSError as exc:
            raise _unreadable(export, _plain(exc)) from None
        return _columns(export, names, source)[1]
    try:
        schema, _ = _parquet_schema(export)
    except IngestError:
        raise
    except (Exception, pl.exceptions.PanicException) as exc:  # all mean the same to a user
        problem = privacy.masked_text(_plain(exc))
        raise _unreadable(export, f"not a Parquet file, or a damaged one ({problem})") from None
    renamed, extra = _columns(export, list(schema), source)
    _check_parquet_types(export, schema, renamed, source)
    return extra


def check_headers(
    exports: list[ExportFile], source: Source, rows: bool = False
) -> dict[str, list[str]]:
    """`check_header` of every file: the columns no contract column reads, per file that has
    some. Fails (`IngestError`) naming every file refused, each with its problem, not only the
    first: a sender fixes them all at once. Both engines call it before anything is written.
    With `rows`, when a file is refused, the others' rows are read too, for the files refused
    for their rows (`_refuse_all`), named in the same error."""
    refused, ignored, passed = _headers(exports, source)
    if refused and rows:
        refuse_all(refused, passed, source)
    if refused:
        raise refused_error([str(error) for error in refused], source)
    return ignored


def _headers(
    exports: list[ExportFile], source: Source
) -> tuple[list[IngestError], dict[str, list[str]], list[ExportFile]]:
    """`check_header` of every file: (the refusals, the columns ignored per file that has some,
    the files whose header passed)."""
    refused: list[IngestError] = []
    ignored: dict[str, list[str]] = {}
    passed: list[ExportFile] = []
    for export in exports:
        try:
            extra = check_header(export, source)
        except IngestError as error:
            refused.append(error)
            continue
        passed.append(export)
        if extra:
            ignored[export.relpath] = extra
    return refused, ignored, passed


def refused_error(refused: list[str], source: Source) -> IngestError:
    """One error for the files of a source that cannot be taken in, each with its problem."""
    if len(refused) == 1:
        return IngestError(refused[0])
    return IngestError(
        f"{len(refused)} {source.name} files cannot be taken in; nothing was staged: "
        + "; ".join(refused)
    )


def _csv_problem(export: ExportFile, exc: Exception) -> IngestError:
    """A CSV file polars could not read, described in plain words with the line at fault.

    Only runs when a read failed, so reading the file again here costs nothing on good files.
    """
    try:
        with export.path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            width = len(next(reader, []))
            for record in reader:
                opened = next((v for v in record if _OPENED_AFTER_SPACE.match(v)), None)
                if len(record) > width and opened is not None:
                    return IngestError(
                        f"{export.relpath}: line {reader.line_num} has {len(record)} fields but "
                        f"the header has {width}: a value quoted after a space holds the "
                        f"separator ({_shown(opened)}...); a quote opens a quoted value only "
                        "right after the comma: remove the space before the quote, then run "
                        "again"
                    )
                if len(record) > width:
                    return IngestError(
                        f"{export.relpath}: line {reader.line_num} has {len(record)} fields but "
                        f"the header has {width} (a separator inside a value that is not "
                        "quoted?); fix the file and run again"
                    )
                stray = next(
                    (
                        v
                        for v in record
                        if '"' in v and not v.startswith('"') and not _QUOTED_FORM.match(v)
                    ),
                    None,
                )
                if stray is not None:  # csv reads it as text; polars refuses the file
                    return _quote_inside_value(export, reader.line_num, stray)
    except UnicodeDecodeError:
        with export.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return _unreadable(
                        export,
                        f"line {number} is not UTF-8 text; exports must be UTF-8 (save it as "
                        "UTF-8)",
                    )
    except (OSError, csv.Error):
        pass
    try:
        _text_after_closing_quote(export)
    except IngestError as problem:
        return problem
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    # Last: Python's csv reads a lone CR as a line's end, so the checks above saw such lines
    # whole; polars reads on past it (a line of too many fields), and said only that.
    line = _bare_cr_line(export)
    if line is not None:
        return _unreadable(
            export,
            f"line {line} holds a CR alone outside a quoted value, which ends a line only in old "
            'Mac files (Excel\'s "CSV (Macintosh)"; a part pasted from one?): save it with LF '
            "or CRLF line endings, then run again",
        )
    # polars quotes the value it could not parse ("could not parse `...` as dtype `str`")
    return _unreadable(export, privacy.masked_text(_plain(exc)))


def _bare_cr_line(export: ExportFile) -> int | None:
    """The first line (counted by LF) holding a CR that neither ends it nor sits inside a quoted
    value, or None. The header's own line endings are looked at before (`_csv_header`)."""
    quoted = False  # inside a quoted value at the start of the line
    with export.path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            body = line.rstrip(b"\n").removesuffix(b"\r")
            if b"\r" in body:
                inside = quoted
                for byte in body:
                    if byte == 0x22:  # a doubled quote toggles twice: still inside
                        inside = not inside
                    elif byte == 0x0D and not inside:
                        return number
            quoted ^= line.count(b'"') % 2 == 1
    return None


def _text_after_closing_quote(export: ExportFile) -> None:
    """Raise an `IngestError` naming the first line with text after a value's closing quote
    (`"C1"x`, `"C1" ,`), which polars refuses with its own words; Python's csv reads such a
    value silently unless strict. Or naming the line where a quote opens that no quote closes
    (the rest of the file read as one value: polars said only "could not parse")."""
    with export.path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        starts = 1  # the line the record being read starts on
        try:
            for _ in reader:
                starts = reader.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                rest = reader.line_num - starts + 1
                raise IngestError(
                    f"{export.relpath}: a quote on line {starts} opens a value that no quote "
                    f"closes, so the file's last {rest} lines would be one value "
                    f"({_shown(_line_text(export, starts))}): close the quote, or double a "
                    'quote inside a value ("TV 55"" LED"), then run again'
                ) from None
            if "expected after" not in str(exc):
                raise
            line = reader.line_num
            raise IngestError(
                f"{export.relpath}: line {line} has text after the closing quote of a value, "
                f"a space included ({_shown(_line_text(export, line))}): a quoted value ends "
                "at its quote, then the comma; remove what follows the quote, or quote the "
                'whole value ("TV 55"" LED"), then run again'
            ) from None


def _line_text(export: ExportFile, number: int) -> str:
    """Line `number` (1-based) of a text file, for a message."""
    with export.path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        for i, line in enumerate(handle, start=1):
            if i == number:
                return line.rstrip("\r\n")
    return ""


def _field_counts(export: ExportFile, rows: pl.Series, records: int) -> pl.Series:
    """The number of fields of the given data rows (0-based) of a CSV file.

    Only asked for rows whose last field is empty or missing (polars pads a short row with NULLs,
    so these are the only rows that can be short). Lines are counted as fields (separators
    outside quoted text, plus one) when the file has one line per record; a file with line
    breaks inside quoted values is read record by record instead.
    """
    lines = pl.read_lines(export.path).to_series()
    if len(lines) == records + 1:
        picked = lines.gather(rows + 1)
        unquoted = picked.str.replace_all('"[^"]*"', "")
        fields = unquoted.str.count_matches(",", literal=True) + 1
        return fields.set(picked.str.strip_chars("\r") == "", 0).cast(pl.Int64)
    with export.path.open("rb") as handle:  # a binary file's lines end at LF alone
        reader = csv.reader(_lines_as_polars_reads_them(handle))
        next(reader, None)
        counts = [len(record) for record in reader]
    if len(counts) != records:  # never count the fields of one row against another
        raise _unreadable(
            export,
            f"its rows cannot be told apart ({records} rows read, {len(counts)} counted); "
            "check its quotes and line endings",
        )
    return pl.Series(counts, dtype=pl.Int64).gather(rows)


def _lines_as_polars_reads_them(handle) -> Iterator[str]:
    """The text lines of a binary file, for Python's csv module, which ends a record at a CR
    alone where polars keeps the CR in the value: such a CR is replaced (the field count is all
    that is asked), else every count after it would belong to another row. One line at a time:
    a large file is never read whole."""
    first = True
    for line in handle:
        ending = b"\r\n" if line.endswith(b"\r\n") else b"\n" if line.endswith(b"\n") else b""
        body = line[: len(line) - len(ending)]
        if b"\r" in body:
            body = body.replace(b"\r", b"\x1e")
        text = (body + ending).decode("utf-8")
        if first:
            text, first = text.removeprefix("\ufeff"), False
        yield text


# Bytes of values with line breaks looked at at once for rows inside them (`_in_parts`).
LINE_BREAK_PART_BYTES = 64 * 2**20


def _in_parts(rows: pl.Series, sizes: pl.Series) -> Iterator[pl.Series]:
    """`rows` (row numbers, in order) in consecutive parts of about LINE_BREAK_PART_BYTES of
    values (`sizes`, each row's), at least one row each: a file of 1 MB reviews is looked at
    64 MB at a time, not whole."""
    if not len(rows):
        return
    sizes = sizes.cast(pl.Int64)
    part = (sizes.cum_sum() - sizes) // LINE_BREAK_PART_BYTES
    for _, group in pl.DataFrame({"row": rows, "part": part}).group_by("part", maintain_order=True):
        yield group["row"]


def _rows_inside_values(
    export: ExportFile, frame: pl.DataFrame, source: Source, renamed: dict[str, str]
) -> None:
    """Refuse a CSV file in which a quoted value runs over a line that reads as a whole row: a
    stray `"` (e.g. `10" screen` unquoted, or a quote never closed until a later row's) turns
    the rows up to the next `"` into one value, which a reader takes for one row, so those rows
    would be lost without a trace. A line inside a value reads as a row when it has the header's
    number of fields and every typed field of the contract (dates, timestamps, numbers,
    booleans) parses at its place: text with line breaks and commas (a review, an address) does
    not. Only values with a line break are looked at; every column counts, ignored ones too."""
    if not frame.height or not frame.width or _lines(export) == frame.height + 1:
        return  # one line per row (and the header): no value holds a line break
    typed = {
        position: source.dtypes[renamed[name]]
        for position, name in enumerate(frame.columns)
        if renamed.get(name) in source.dtypes and source.dtypes[renamed[name]] != pl.String
    }
    column_names = {position: renamed.get(name) for position, name in enumerate(frame.columns)}

    def reads_as_rows(lines: pl.Series) -> pl.Series:
        fields = lines.str.split(",")
        whole = (fields.list.len() == frame.width).fill_null(False)
        parsed = pl.Series(values=[False] * len(lines), dtype=pl.Boolean)
        for position, dtype in typed.items():
            text = fields.list.get(position, null_on_oob=True).str.strip_chars()
            # A blank optional typed field (a conversion date, a flag) is a row's field too:
            # read as a value that must parse, a swallowed row with one was lost unseen. A
            # required one must hold its value (an address's blank parts are not a row's).
            value = parse_column(text, dtype)[0].is_not_null().fill_null(False)
            if column_names[position] in source.required_columns:
                whole &= value
            else:
                whole &= value | text.is_in(list(NULL_TEXTS)).fill_null(False)
            parsed |= value
        return whole & parsed  # and at least one typed field holds a value of its type

    found: tuple[int, str] | None = None  # (row, column) of the first value holding a row
    for column in frame.columns:
        broken = frame[column].str.contains("\n", literal=True).fill_null(False).arg_true()
        for rows in _in_parts(broken, frame[column].gather(broken).str.len_bytes()):
            inner = pl.DataFrame(
                {"row": rows, "line": frame[column].gather(rows).str.split("\n").list.slice(1)}
            ).explode("line")
            # Only a line with the header's number of fields can read as a row: counted first,
            # split into fields after (a review's paragraphs, split whole, took 5 times the
            # file's size in memory).
            inner = inner.filter(
                inner["line"].str.count_matches(",", literal=True) == frame.width - 1
            )
            hits = inner.filter(reads_as_rows(inner["line"]))
            if hits.height:  # the parts are in row order: the first hit is this column's first
                if found is None or hits["row"][0] < found[0]:
                    found = (int(hits["row"][0]), column)
                break
    if found is None:
        return
    row, column = found
    lines = frame[column][row].split("\n")
    k = 1 + int(reads_as_rows(pl.Series(lines[1:], dtype=pl.String)).arg_true()[0])
    # the record's first line: the header, the rows before, the line breaks inside them
    before = frame.head(row).select(
        pl.sum_horizontal(pl.all().str.count_matches("\n", literal=True).fill_null(0))
    )
    first = 2 + row + int(before.to_series().sum())
    raise IngestError(
        f"{export.relpath}: the quoted value that opens on line {first} runs over "
        f"{len(lines)} lines, and line {first + k} inside it reads as a whole row "
        f'({_shown(lines[k])}): a stray " (an unquoted inch mark, a quote never closed)? '
        'Quote such values and double the quotes inside them ("10"" screen"), then run again'
    )


def _lines(export: ExportFile) -> int:
    """The number of lines of a CSV file (a last line without its line break counts). Refuses a
    file holding a NUL byte, naming the line: polars would stage it inside a value (`C\\01`),
    where no key or email matches it. numpy counts the line breaks at about 2 GB/s, twice as
    fast as `bytes.count` and four times as fast as asking polars which values hold one."""
    breaks, last = 0, b"\n"
    with export.path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            codes = np.frombuffer(chunk, dtype=np.uint8)
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise _nul_problem(export, breaks + int(np.count_nonzero(codes[:nul] == 10)) + 1)
            breaks += int(np.count_nonzero(codes == 10))
            last = chunk[-1:]
    return breaks + (last != b"\n")


def _parquet_nul(export: ExportFile, frame: pl.DataFrame) -> None:
    """Refuse a Parquet file with a NUL character in a text value the contract reads, naming its
    row and column, as a CSV file holding a NUL byte is (`_lines`): it was staged inside the
    value (`x8@exa\\0mple.com`) and written so into the audience files. One literal search per
    text column, dictionary-encoded ones too."""
    for name, dtype in frame.schema.items():
        if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
            text = frame[name].cast(pl.String)
            found = text.str.contains("\x00", literal=True).fill_null(False)
            if found.any():
                row = int(found.arg_true()[0]) + 1
                raise _unreadable(
                    export,
                    f"row {row} holds a NUL character (\\0) in {privacy.masked_text(name)}, "
                    "which no text value may hold (a damaged export, or a tool's padding); "
                    "remove it and run again",
                )


def _shown(line: str, limit: int = 60) -> str:
    """An excerpt of a file's text for a message, its emails and handles masked: the message
    reaches the console and Dagster's run logs and event storage, which erasure does not reach,
    and the excerpt's shape (its quotes, separators, ids) is what finds the line. Masked before
    it is shortened, so no cut leaves part of an address unmasked."""
    line = privacy.masked_text(line.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _header_key(name: str) -> str:
    """A header name as the repeated-header check compares it: without a byte-order mark,
    invisible characters, spaces around it or quotes, in lower case, with runs of spaces,
    hyphens or dots as `_` (what `_columns` forgives in a header)."""
    name = re.sub(INVISIBLE_PATTERN, "", name).strip()
    return _SEPARATORS.sub("_", _unquoted_name(name).lower())


def _repeated_header(
    export: ExportFile, frame: pl.DataFrame, renamed: dict[str, str], source: Source
) -> None:
    """Refuse a CSV file with a row that repeats the header's names, in any order, case or
    spacing: two exports pasted together (`cat` keeps the second one's byte-order mark). With
    its columns in another order, the rows after it were staged into the wrong columns (order
    and customer ids swapped); in the same order the row is no data either. One look at the
    first column; a row is compared whole only where that value is a header name, so a value
    that happens to name a column is a value."""
    named = [raw for raw, name in renamed.items() if name and not _UNNAMED.fullmatch(name)]
    names = {_header_key(raw) for raw in named}
    # The contract's columns apart: a pasted part may name its other columns otherwise, or put
    # them elsewhere; either way of matching is a repeated header.
    contract = [i for i, raw in enumerate(named) if renamed[raw] in source.columns]
    contract_names = {_header_key(named[i]) for i in contract}
    if len(named) < 2 or not frame.height:
        return

    def cleaned(column: str) -> pl.Expr:  # `_header_key` of each value
        text = pl.col(column).str.replace_all(INVISIBLE_PATTERN, "").str.strip_chars()
        text = text.str.strip_chars('"').str.strip_chars().str.to_lowercase()
        return text.str.replace_all(_SEPARATORS.pattern, "_")

    hits = frame.select(cleaned(named[0]).is_in(list(names))).to_series()
    if not hits.any():
        return
    rows = frame.with_row_index("row").filter(hits)
    for row, values in rows.select("row", pl.concat_list(map(cleaned, named))).iter_rows():
        if set(values) == names or {values[i] for i in contract} == contract_names:
            raise IngestError(
                f"{export.relpath}: row {row + 1} repeats the header (two exports pasted "
                "together): split the file where that row starts, each part with its header"
            )


def _short_rows(export: ExportFile, frame: pl.DataFrame) -> pl.Series:
    """Per row of a CSV file: why its fields cannot be trusted (fewer fields than the header), or
    NULL. One NULL check of the last column; lines are read only if that column has NULLs."""
    problem = pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias(ROW_PROBLEM)
    if not frame.width or not frame.height:
        return problem
    candidates = frame[frame.columns[-1]].is_null().arg_true()
    if not len(candidates):
        return problem
    fields = _field_counts(export, candidates, frame.height)
    # Columns without a name at the header's end (a trailing `,` on the header line alone, as
    # some tools write it) hold nothing: a row without them has every field.
    named = [i for i, c in enumerate(frame.columns) if c.strip() and not _UNNAMED.fullmatch(c)]
    width = named[-1] + 1 if named else frame.width
    short = fields < width
    if not short.any():
        return problem
    detail = pl.select(
        pl.when(pl.lit(fields.filter(short)) == 0)
        .then(pl.lit("a blank line"))
        .otherwise(
            pl.format("{} field(s) where the header has {}", pl.lit(fields.filter(short)), width)
        )
    ).to_series()
    return problem.scatter(candidates.filter(short), detail)


def _as_text(column: pl.Expr, dtype: pl.DataType, contract: pl.DataType) -> pl.Expr:
    """A column's values as text, to be parsed like a CSV's. Floats for an integer column (pandas
    writes an integer column with a gap as floats: 5.0 and NaN) are written as integers when
    whole; `4.5` stays as it is and is quarantined as not an integer. NaN, in an integer or a
    boolean column, is a missing value. Decimals are written as they are (`5.00`, read as 5
    exactly by `parse_column`; `5.50` quarantined)."""
    if contract.base_type() is pl.Int64 and dtype.base_type() in _FLOATS:
        # whole and within an integer's range; 1e20 stays `1e20` (quarantined, value shown)
        whole = column.is_finite() & (column == column.round(0)) & (column.abs() < 2.0**63)
        return (
            pl.when(column.is_nan())
            .then(None)
            .when(whole)
            .then(column.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(column.cast(pl.String))
        )
    if contract.base_type() is pl.Boolean and dtype.base_type() in _FLOATS:
        return pl.when(column.is_nan()).then(None).otherwise(column.cast(pl.String))  # a gap
    if dtype.base_type() in (pl.Datetime, pl.Date):
        return _temporal_as_text(column, dtype)
    return column.cast(pl.String)


def _temporal_as_text(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A Parquet date or timestamp column as text. A value outside the years 1 to 9999 (epoch
    nanoseconds written into a millisecond column, a date32 of 2**31 - 1) stopped the ingest with
    a panic of polars' text conversion that named no file: it is written as its stored number
    and unit instead, which no timestamp form parses (quarantined, the number shown). A time
    with a zone keeps a day's margin, so that it is within those years in any zone and in UTC."""
    physical = column.to_physical()
    if dtype.base_type() is pl.Date:
        unit, low, high = "days", -719_162, 2_932_896  # 0001-01-01 and 9999-12-31
    else:
        unit = {"ns": "nanoseconds", "us": "microseconds", "ms": "milliseconds"}[
            dtype.time_unit  # type: ignore[attr-defined]
        ]
        per_second = {"nanoseconds": 10**9, "microseconds": 10**6, "milliseconds": 10**3}[unit]
        margin = 86_400 if dtype.time_zone is not None else 0  # type: ignore[attr-defined]
        # 0001-01-01T00:00:00 and 9999-12-31T23:59:59.999..., in seconds from 1970
        low = (-62_135_596_800 + margin) * per_second
        high = (253_402_300_800 - margin) * per_second - 1
        if unit == "nanoseconds":  # an i64 of nanoseconds spans the years 1677 to 2262
            low, high = -(2**63) + 1, 2**63 - 1
    inside = physical.is_between(low, high)
    return pl.coalesce(
        pl.when(inside).then(column).cast(pl.String),
        pl.when(~inside).then(
            pl.format("{} {} since 1970-01-01 (out of range)", physical, pl.lit(unit))
        ),
    )


# `-05:00`, `-0500` and `-05` (pyarrow writes and reads each)
_OFFSET = re.compile(r"([+-])(\d{2})(?::?(\d{2}))?")


def _at_offset_as_text(column: pl.Expr, dtype: pl.DataType, zone: str) -> pl.Expr:
    """A Parquet timestamp column at a fixed offset (`-05:00`), read as UTC instants, as text at
    that offset again (`2024-03-01 23:30:00.000000-05:00`), as a CSV writes it: a date column
    so written is the date written, as the contract says (its UTC day, 2024-03-02, was staged),
    and a timestamp the same instant. Values outside the years 1 to 9999 keep
    `_temporal_as_text`'s words; a zone that is no offset stays in UTC."""
    text = _temporal_as_text(column, dtype)
    offset = _OFFSET.fullmatch(zone)
    if offset is None:
        return text
    sign, hours, minutes = offset.groups()
    minutes = minutes or "00"
    shift = (1 if sign == "+" else -1) * (int(hours) * 60 + int(minutes))
    inside = ~text.str.ends_with("(out of range)").fill_null(False)
    local = pl.when(inside).then(column).dt.replace_time_zone(None) + pl.duration(minutes=shift)
    return pl.when(inside).then(local.cast(pl.String) + f"{sign}{hours}:{minutes}").otherwise(text)


# A value quoted after the separator's space (`O1, "C1"`): CSV readers that follow RFC 4180,
# polars among them, take the quotes for part of the text, and `"C1"` matched no customer.
_QUOTED_AFTER_SPACE = r'^\s+"((?:[^"]|"")*)"\s*$'
_QUOTED_FORM = re.compile(_QUOTED_AFTER_SPACE)
# A value quoted after a space whose closing quote is in a later field: the separator inside it
# split it (`O1, "Smith, John"`).
_OPENED_AFTER_SPACE = re.compile(r'^\s+"(?:[^"]|"")*$')


def _quote_scan(export: ExportFile) -> bool:
    """Whether a `"` follows a space or a tab in a CSV file (then `_unquoted_after_space` reads
    `O1, "C1"` as `C1`); and refuse the file when a `"` sits inside a value that is not quoted
    where polars reads it anyway and would stage the quote as text: `="00123"` (a spreadsheet's
    guard for leading zeros), `a""b`. A quote that opens a value (an even number of quotes
    before it) must follow the separator, a line break, the file's start, another quote (a
    doubled quote inside a quoted value) or spaces after the separator. An odd one out
    (`TV 55" LED`) fails polars' read and `_csv_problem` names it. One byte scan (0.28-0.46
    CPU-s for 622 MiB of orders) that spares most files `_unquoted_after_space` (1.5 CPU-s on
    the same rows, whose stray spaces lead a few values of every column)."""
    if not export.path.stat().st_size:
        return False
    data = np.memmap(export.path, dtype=np.uint8, mode="r")
    start = 3 if bytes(data[:3]) == b"\xef\xbb\xbf" else 0  # after a BOM
    quotes_before, after_space = 0, False
    for begin in range(start, data.size, 1 << 24):
        quotes = np.flatnonzero(data[begin : begin + (1 << 24)] == 34) + begin
        if not quotes.size:
            continue
        before = np.where(quotes > start, data[np.maximum(quotes - 1, 0)], 10)
        spaces = (before == 32) | (before == 9)
        after_space |= bool(spaces.any())
        opening = (np.arange(quotes.size) + quotes_before) % 2 == 0
        quotes_before += quotes.size
        odd = quotes[opening & ~np.isin(before, (44, 10, 13, 34, 32, 9))]
        # `O1, "C1"` opens a quoted value after spaces: the byte before them must end a field.
        at = quotes[opening & spaces]
        back = at - 1
        while back.size:
            blank = (back >= start) & np.isin(data[np.maximum(back, 0)], (32, 9))
            if not blank.any():
                break
            back = np.where(blank, back - 1, back)
        if at.size:
            ended = (back < start) | np.isin(data[np.maximum(back, 0)], (44, 10, 13))
            odd = np.concatenate([odd, at[~ended]])
        if odd.size:
            _refuse_quote_inside(export, data, start, int(odd.min()))
    return after_space


def _refuse_quote_inside(export: ExportFile, data: np.ndarray, start: int, at: int) -> None:
    """Raise the `IngestError` of a `"` at byte `at` inside a value that is not quoted, naming
    the line and the value (its text between the separators)."""
    breaks = np.flatnonzero(data[:at] == 10)
    first = int(breaks[-1]) + 1 if breaks.size else start
    text = bytes(data[first : first + (1 << 16)]).split(b"\n", 1)[0]
    offset = len(bytes(data[first:at]).decode("utf-8", errors="replace"))
    text = text.decode("utf-8", errors="replace").rstrip("\r")
    value = text[text.rfind(",", 0, offset) + 1 :].split(",", 1)[0]
    raise _quote_inside_value(export, breaks.size + 1, value)


def _quote_inside_value(export: ExportFile, line: int, value: str) -> IngestError:
    """The refusal of a file with a `"` inside a value that is not quoted, on `line`: found by
    the byte scan (polars read the file) or by `_csv_problem` (polars could not)."""
    return IngestError(
        f'{export.relpath}: line {line} has a " inside a value that is not quoted '
        f'({_shown(value)}); quote the value and double the quote ("TV 55"" LED"), then run '
        "again"
    )


def _unquoted_after_space(frame: pl.DataFrame) -> pl.DataFrame:
    """A CSV value written as whitespace, then a quoted value (`, "C1"`, as hand edits and some
    tools write a list), read as the quoted value (`C1`; a doubled `""` inside is one `"`), as
    Python's csv reads it with `skipinitialspace`. Only values starting with a space or a tab
    are matched against the pattern (exports with stray spaces have some in every column)."""
    fixed = []
    for name in frame.columns:
        column = frame[name]
        lead = (column.str.starts_with(" ") | column.str.starts_with("\t")).fill_null(False)
        rows = lead.arg_true()
        if not len(rows):
            continue
        inner = column.gather(rows).str.extract(_QUOTED_AFTER_SPACE, 1)
        hit = inner.is_not_null()
        if not hit.any():
            continue
        values = inner.filter(hit).str.replace_all('""', '"', literal=True)
        fixed.append(column.scatter(rows.filter(hit), values))
    return frame.with_columns(fixed) if fixed else frame


def _not_too_wide(export: ExportFile, width: int) -> None:
    if width > MAX_COLUMNS:
        raise IngestError(
            f"{export.relpath}: {width:,} columns, more than the {MAX_COLUMNS:,} an export may "
            "have: is it the right file? (an export holds its contract's columns and may hold "
            "others, which are ignored; docs/CONTRACTS.md)"
        )


def read_raw(export: ExportFile, source: Source) -> tuple[pl.DataFrame, list[str]]:
    """The file's rows as text, in contract column order, with `source_file`, `source_row` and
    `row_problem` (why a CSV row's fields cannot be trusted: fewer fields than the header).

    Returns the frame and the names of columns the contract does not know (ignored, reported).
    `source_row` is the 1-based record number (1 = first data row; a CSV's header is not counted).
    Only the contract's columns of a Parquet file are read.
    """
    problem = None
    offsets: dict[str, str] = {}  # Parquet timestamp columns at a fixed offset, with it
    if export.path.suffix.lower() == ".csv":
        read = functools.partial(
            pl.read_csv,
            export.path,
            infer_schema=False,
            encoding="utf8",
            raise_if_empty=False,
            glob=False,
        )
        try:
            _not_too_wide(export, read(n_rows=0).width)
            frame = read()
        except IngestError:
            raise
        except Exception as exc:  # polars raises several types; all mean the same to a user
            raise _csv_problem(export, exc) from None
        renamed, extra = _columns(export, frame.columns, source)
        _repeated_header(export, frame, renamed, source)
        _rows_inside_values(export, frame, source, renamed)
        problem = _short_rows(export, frame)
        if _quote_scan(export):
            frame = _unquoted_after_space(frame)
    else:
        try:
            schema, odd = _parquet_schema(export)
            renamed, extra = _columns(export, list(schema), source)
            _check_parquet_types(export, schema, renamed, source)
            wanted = [name for name, c in renamed.items() if c in source.columns]
            frame = _read_parquet(export.path, wanted, odd)
            _parquet_nul(export, frame)
            offsets = {name: zone for name, zone in odd.items() if name in wanted}
        except IngestError:
            raise
        except (Exception, pl.exceptions.PanicException) as exc:  # all mean the same to a user
            raise _unreadable(
                export, f"not a Parquet file, or a damaged one ({privacy.masked_text(_plain(exc))})"
            ) from None
    by_name = {new: old for old, new in renamed.items()}
    frame = frame.select(
        pl.lit(export.relpath).alias("source_file"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("source_row"),
        *[
            _at_offset_as_text(
                pl.col(by_name[c]), frame.schema[by_name[c]], offsets[by_name[c]]
            ).alias(c)
            if by_name.get(c) in offsets
            else _as_text(pl.col(by_name[c]), frame.schema[by_name[c]], source.dtypes[c]).alias(c)
            if c in by_name
            else pl.lit(None, dtype=pl.String).alias(c)
            for c in source.columns
        ],
        pl.lit(None, dtype=pl.String).alias(ROW_PROBLEM) if problem is None else pl.lit(problem),
    )
    return frame, extra


def refuse_all(refused: list[IngestError], rest: list[ExportFile], source: Source) -> NoReturn:
    """Raise one IngestError naming every file refused while its rows are read: the files
    after the first refused one (`rest`) are read too, only to find theirs, so a sender fixes
    them all at once rather than one per run (as `check_headers` does for the headers). The
    caller's transaction then rolls back: nothing is staged."""
    raise all_refused(refused, rest, source) from None


def all_refused(refused: list[IngestError], rest: list[ExportFile], source: Source) -> IngestError:
    """One error naming the files `refused` and those of `rest` refused for their rows (read
    whole), in path order."""
    refused = refused + rows_refused(rest, source)
    return refused_error(sorted(str(error) for error in refused), source)


def rows_refused(exports: list[ExportFile], source: Source) -> list[IngestError]:
    """The files refused for their rows (`read_raw`'s refusals), each file read whole: for the
    message of a run that fails anyway, naming every file to fix."""
    refused = []
    for export in exports:
        try:
            read_raw(export, source)
        except IngestError as error:
            refused.append(error)
    return refused
