"""What a staging says of the files it read, in words a data engineer acts on: files taken in
as copies of others, moved, cut short, mostly quarantined, with columns the contract does not
know or timestamps at another offset; keys withdrawn or restaged; profiles and orders changed
by a later file. Both engines' staging steps and the CLI print these
(`staging/ingestion.py` and `spark/staging.py` find what they say)."""

from engagement_box.clock import shop_zone
from engagement_box.staging.contracts import STAGING_RULES
from engagement_box.staging.reading import SHOWN_COLUMNS


def other_offset_message(file: str, example: str) -> str:
    """What a run says of a file whose timestamps carry another offset than UTC's while
    ENGAGEMENT_TIME_ZONE is not set (`other_offset`): a New York shop's evening orders counted
    on the next day, without a word (a review of time zones)."""
    return (
        f"{file}: its timestamps are written at an offset other than UTC's ({example}): they are "
        "staged as UTC instants, so their days and months are UTC's (an evening order at -04:00 "
        "counts on the next day). If the shop keeps another calendar, set ENGAGEMENT_TIME_ZONE "
        "(e.g. America/New_York), which takes every file in again; to keep UTC, set it to UTC "
        "(docs/CONTRACTS.md)"
    )


def cut_short_message(file: str, reasons: list[str]) -> str:
    """What a run says of a file that looks cut short (`cut_short_files`)."""
    return (
        f"{file} looks cut short: its last line has no line end and its last row was "
        f"quarantined ({', '.join(reasons)}). If it was copied while still being written, put "
        "the whole export in its place and run again (a version published from the part stays "
        "in history until `engagement-box retire --version N` removes it; docs/OPERATIONS.md)"
    )


def copy_message(file: str, other: str) -> str:
    """What a run says of a file whose content is that of another export file."""
    return (
        f"{file} holds the same content as {other}: its rows are quarantined as duplicate_key "
        f"(each key is staged once); remove one of the two if the export was dropped twice"
    )


def mostly_quarantined_message(
    file: str, read: int, quarantined: int, where: str = "staging.quarantine"
) -> str | None:
    """What the CLI says of a file at least half of whose rows were quarantined (None for one
    that is not): a whole export can fail its contract (dates as 11/01/2025), and a run that
    only counted it published a month without it. `where`: where the quarantine is read (the
    Spark engine's is a folder of its lake)."""
    if not read or quarantined * 2 < read:
        return None
    return (
        f"{file}: {quarantined:,} of {read:,} rows quarantined; {where} says why "
        "(fix the export and drop it again: the changed file replaces its rows; a row "
        "quarantined as duplicate_key repeats a key staged from another file, which a later "
        "file never replaces: to correct it, change the file it was staged from)"
    )


def source_of(file: str) -> str:
    """The source an export file was read for: the first folder of its path (`discover_files`
    names each file from the exports folder: `<source>/...`)."""
    return file.split("/", 1)[0]


def ignored_columns_message(source: str, file: str, columns: list[str]) -> str:
    """What the CLI says of a file's columns that the source's contract does not know: the
    first SHOWN_COLUMNS of them, and how many there are when there are more."""
    named = ", ".join(columns[:SHOWN_COLUMNS])
    if len(columns) > SHOWN_COLUMNS:
        named += f", ... ({len(columns):,} in all)"
    return (
        f"{file}: column(s) {named} ignored: not columns of {source} "
        "(docs/CONTRACTS.md lists them; a column named differently is not read)"
    )


def file_warnings(
    ignored: dict[str, list[str]],
    quarantined: dict[str, list[int]],
    copies: dict[str, str] | None = None,
    where: str = "staging.quarantine",
) -> list[str]:
    """What a run says of its files from a staging step's metadata (`ignored_columns`,
    `quarantined_by_file`, `copies_of_earlier_files`), on either engine: each file's columns
    its contract ignores, then each file at least half quarantined, unless it is a resent copy
    (said as a copy, `copy_message`). `where`: as `mostly_quarantined_message`'s."""
    said = [ignored_columns_message(source_of(f), f, c) for f, c in ignored.items()]
    for file, (read, lost) in quarantined.items():
        mostly = (
            None if file in (copies or {}) else mostly_quarantined_message(file, read, lost, where)
        )
        if mostly:
            said.append(mostly)
    return said


def adopted_message(hashes: int) -> str:
    """What a run says when its ingest took erasures from the register (`adopt_register`)."""
    return (
        f"{hashes} erased people's keys taken from the register beside the working database "
        "(it was started anew): their rows in the exports are kept out, as before"
    )


def moved_message(moved: dict[str, str]) -> str:
    """What a run says of export files found at a new path with the content they were taken in
    with (moved or renamed): not read again."""
    said = []
    away = sorted((path, origin) for path, origin in moved.items() if path != origin)
    if away:
        (first, origin), more = away[0], _more(len(away))
        said.append(f"moved, not read again: {first} (taken in as {origin}){more}")
    back = sorted(path for path, origin in moved.items() if path == origin)
    if back:  # moved away by an earlier run, now where it was taken in from
        said.append(f"back where taken in, not read again: {back[0]}{_more(len(back))}")
    return (
        "; ".join(said) + "; their rows keep the path they were staged from "
        "(staging.ingested_files.moved_to says where each file is now)"
    )


def _more(count: int) -> str:
    return f" and {count - 1} more" if count > 1 else ""


def rules_message(files: dict[str, int]) -> str:
    """What a run says of unchanged files taken in again under the ingest's current rules
    (files per source)."""
    counts = ", ".join(f"{source} {n}" for source, n in sorted(files.items()))
    return (
        f"taken in again under the ingest's current rules (version {STAGING_RULES}, time zone "
        f"{shop_zone()}), though "
        f"unchanged: {counts} file(s), taken in by an earlier version of Engagement Box or "
        "under another ENGAGEMENT_TIME_ZONE; their rows now read as docs/CONTRACTS.md says"
    )


def withdrawn_message(source: str, file: str, withdrawn: dict) -> str:
    """What a run says of a changed file whose keys staged before no file stages now: those it
    no longer holds, and those it holds in a row quarantined now; and of its keys staged now
    from another file taken in by the run."""

    def keys(count: int, first: list) -> str:
        listed = ", ".join(str(k).replace("\x1f", " ") for k in first)
        return f"(keys {listed}{', ...' if count > len(first) else ''})"

    # An unchanged file taken in again under the ingest's current rules: the rules, not the
    # file, moved its rows ("changed" sent a user looking for an edit no one made).
    rules = withdrawn.get("rules")
    said = []
    no_longer = (
        f"{file}, unchanged, read under the ingest's current rules (version {rules}), no longer "
        "gives"
        if rules
        else f"{file} changed and no longer holds"
    )
    if withdrawn["keys"]:
        said.append(
            f"{no_longer} {withdrawn['keys']:,} of the rows it staged "
            f"before {keys(withdrawn['keys'], withdrawn['first'])}: they left staging.{source} "
            "and every table computed from it. A file's rows are replaced when it changes: if "
            "they should stay, put them back in it or in a new file"
        )
    quarantined = withdrawn.get("quarantined", 0)
    if quarantined:
        head = (
            f"{file}, unchanged, read under the ingest's current rules (version {rules}):"
            if rules
            else f"{file} changed:"
        )
        said.append(
            f"{head} {quarantined:,} of its rows staged before are now quarantined "
            f"{keys(quarantined, withdrawn['quarantined_first'])}: they left staging.{source} "
            "and every table computed from it; staging.quarantine says why (docs/CONTRACTS.md "
            "gives the rules), correct them in the file"
        )
    erased = withdrawn.get("erased", 0)
    if erased:
        head = (
            f"{file}, unchanged, read under the ingest's current rules (version {rules}):"
            if rules
            else f"{file} changed:"
        )
        said.append(
            f"{head} {erased:,} of its rows staged before belong to people erased on request: "
            f"they left staging.{source} and every table computed from it, as the erasure log "
            "asks (staging.erased_rows counts them); nothing to put back"
        )
    moved = withdrawn.get("moved", 0)
    if moved:
        whose = "that file's" if len(withdrawn["moved_to"]) == 1 else "those files'"
        # The file's own row for such a key is gone, or quarantined now (a bad row, or the
        # repeat of the other file's row): staging.quarantine tells which.
        head = (
            f"{file}, unchanged, read under the ingest's current rules (version {rules}):"
            if rules
            else f"{file} changed, and"
        )
        said.append(
            f"{head} {moved:,} of the keys it staged before "
            f"{keys(moved, withdrawn['moved_first'])} are now staged from "
            f"{', '.join(withdrawn['moved_to'])}: {whose} rows count now for those keys in "
            f"staging.{source}, and their values may differ from those {file} had (its own "
            "row is gone, or quarantined now: staging.quarantine says why)"
        )
    return "; ".join(said)


def restaged_message(source: str, restaged: dict[str, int]) -> str:
    """What a run says when keys a changed file no longer stages were staged again from the row
    that repeated them in another file (`restage_orphaned_duplicates`): that row's values now
    count, and they may differ from the ones the changed file had."""
    files = ", ".join(f"{file} {rows:,}" for file, rows in sorted(restaged.items()))
    total = sum(restaged.values())
    return (
        f"{total:,} key(s) of staging.{source} that a changed file no longer holds are staged "
        f"again from the row that repeated them in another file ({files}): that row's values "
        "count now, and may differ from those the changed file had (staging.quarantine held it "
        "as duplicate_key)"
    )


def order_changes_message(changes: dict[str, dict], shown: int = 5) -> str:
    """What a run says of the orders files whose repeated rows differ from the staged orders
    (`order_changes`, by file), in one line: a return sent as a repeated row was dropped as a
    duplicate and the sale kept counting, with only a quarantine row to show for it (a finance
    review)."""

    def keys(first: list[str], count: int) -> str:
        return ", ".join(first[:shown]) + (", ..." if count > len(first[:shown]) else "")

    rows = sum(c["rows"] for c in changes.values())
    undone = sum(c.get("sale_undone", 0) for c in changes.values())
    files = sorted(changes)
    named = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    said = (
        f"{rows:,} order row(s) in {len(files)} file(s) ({named}) repeat an order staged before "
        f"with other values ({keys([k for c in changes.values() for k in c['first']], rows)}) "
        "and are NOT applied: a repeated order id is quarantined as duplicate_key, the order "
        "staged first stays"
    )
    if undone:
        first = [k for c in changes.values() for k in c.get("undone_first", [])]
        said += (
            f"; among them {undone:,} mark as returned or cancelled an order staged as "
            f"completed ({keys(first, undone)}): their amounts still count in spend, RFM and CLV"
        )
    return said + (
        ". To apply a change (a return), change the order's row in the file it was staged from "
        "(staging.orders.source_file) and send that file again: a changed file replaces its "
        "rows; staging.quarantine lists each repeat (reason duplicate_key)"
    )


def profile_changes_message(file: str, changes: dict) -> str:
    """What a run says of a profiles file whose repeated rows differ from the staged profiles
    (both engines apply a later file's consent: `sql/staging/later_profile_consents.sql`)."""

    def keys(first: list, count: int) -> str:
        return ", ".join(map(str, first)) + (", ..." if count > len(first) else "")

    rows = changes["rows"]
    said = (
        f"{file}: {rows:,} row(s) change a profile staged from an earlier file "
        f"({keys(changes['first'], rows)}) and are NOT applied: a key repeated in a later file "
        "is quarantined as duplicate_key, the profile staged first stays"
    )
    withdrawn = changes.get("consent_withdrawn", 0)
    if withdrawn:
        said += (
            f"; among them {withdrawn:,} withdraw marketing consent "
            f"({keys(changes['withdrawn_first'], withdrawn)}): a withdrawal is applied all the "
            "same (the latest file's word on consent wins), those people leave the audiences"
        )
    return said + (
        ". To apply another change, write it into the file the profile was staged from "
        "(staging.customers.source_file): a changed file replaces its rows (export the "
        "customers to one file name, replaced each time)"
    )
