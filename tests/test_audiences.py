"""Audiences: consent filtering, plays, formula neutralisation, CSV and Parquet output."""

import json
from pathlib import Path

import polars as pl

from engagement_box.activation import audiences
from engagement_box.activation.audiences import (
    AUDIENCE_COLUMNS,
    AUDIENCES,
    RFM_SEGMENTS,
    build_audiences,
    export_audiences,
    file_stem,
    neutralize_formulas,
    write_audiences,
)
from engagement_box.engagement.metrics import QUADRANT_PLAYS, QUADRANTS
from engagement_box.governance import readers
from engagement_box.value import rfm

CUSTOMERS = pl.DataFrame(
    {
        "customer_id": ["c1", "c2", "c3", "c4"],
        "email": ["a@x.com", '=HYPERLINK("http://evil")@x.com', "c@x.com", "d@x.com"],
        "marketing_consent": [True, True, False, None],
    }
)
SEGMENTS = pl.DataFrame(
    {
        "customer_id": ["c1", "c2", "c3", "c4"],
        "segment": ["At Risk", "Champions", "Champions", "Hibernating"],
    }
)
QUADRANT_FRAME = pl.DataFrame(
    {
        "customer_id": ["c1", "c2", "c3"],
        "quadrant": ["CEV Affluents", "CEV Advocates", "CEV Misers"],
    }
)


def test_every_segment_and_quadrant_has_a_play():
    """Prospects (signed up, no completed order) are an RFM segment and an audience file too:
    theirs had an empty play. And the misers' play said "once they buy again" to prospects,
    who never bought."""
    assert set(rfm.SEGMENT_PLAYS) == set(RFM_SEGMENTS) == {*rfm.SEGMENTS, rfm.PROSPECT}
    assert all(play.strip() for play in (*rfm.SEGMENT_PLAYS.values(), *QUADRANT_PLAYS.values()))
    assert "first purchase" in rfm.SEGMENT_PLAYS["Prospect"].lower()
    assert "again" not in QUADRANT_PLAYS["CEV Misers"]
    assert set(QUADRANT_PLAYS) == set(QUADRANTS)
    assert "referral" in QUADRANT_PLAYS["CEV Affluents"].lower()
    assert "purchase" in QUADRANT_PLAYS["CEV Advocates"].lower()
    assert "win back" in rfm.SEGMENT_PLAYS["At Risk"].lower()


def test_only_consenting_customers():
    out = build_audiences(CUSTOMERS, SEGMENTS, QUADRANT_FRAME)
    assert set(out["customer_id"]) == {"c1", "c2"}
    assert out.height == 4
    row = out.filter((pl.col("customer_id") == "c1") & (pl.col("audience_kind") == "quadrant"))
    assert row["play"].item() == QUADRANT_PLAYS["CEV Affluents"]
    row = out.filter((pl.col("customer_id") == "c1") & (pl.col("audience_kind") == "rfm_segment"))
    assert row["play"].item() == rfm.SEGMENT_PLAYS["At Risk"]


def test_formula_neutralisation():
    """A cell a spreadsheet would run as a formula gets a quote; a customer id or an address
    that starts with + or - and holds nothing a formula needs to call anything is left exact
    (a review: `'+447700900123` and `'-jane@example.com` no longer matched the CRM's keys)."""
    frame = pl.DataFrame(
        {
            "text": [
                "=1+1",
                "@SUM(A1)",
                "\tx",
                "\rx",
                "+cmd|' /C calc'!A0",
                "-2+3+cmd|'/Ccalc'!A0",
                '+HYPERLINK("http://evil")',
                "=1+2@example.com",
                "+447700900123",
                "-jane@example.com",
                "+promo@example.com",
                "plain",
                "a=b",
                None,
                "+SUM(A1)",  # a call needs brackets: never inert (a mutation review)
                "-NOW()",
            ],
            "number": list(range(16)),
        }
    )
    out = neutralize_formulas(frame)
    assert out["text"].to_list() == [
        "'=1+1",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "'+cmd|' /C calc'!A0",
        "'-2+3+cmd|'/Ccalc'!A0",
        '\'+HYPERLINK("http://evil")',
        "'=1+2@example.com",
        "+447700900123",
        "-jane@example.com",
        "+promo@example.com",
        "plain",
        "a=b",
        None,
        "'+SUM(A1)",
        "'-NOW()",
    ]
    assert out["number"].to_list() == frame["number"].to_list()


def test_every_audience_has_its_files_and_an_empty_one_a_header_alone(tmp_path):
    """An audience nobody is in today still has its files, a header alone (a review: a
    fixed-name import found no file, and a loop over the files present left yesterday's
    members targeted in the tool)."""
    frame = build_audiences(CUSTOMERS, SEGMENTS, QUADRANT_FRAME)
    files = export_audiences(frame, tmp_path)
    for kind, names in AUDIENCES.items():
        for audience in names:
            csv = tmp_path / kind / f"{file_stem(audience)}.csv"
            assert f"{kind}/{audience}" in files and csv.is_file(), csv
            parquet = pl.read_parquet(csv.with_suffix(".parquet"))
            expected = frame.filter(
                (pl.col("audience_kind") == kind) & (pl.col("audience") == audience)
            )
            assert parquet.equals(expected)
            assert files[f"{kind}/{audience}"]["rows"] == expected.height
            if not expected.height:
                assert csv.read_text() == ",".join(AUDIENCE_COLUMNS) + "\n"
    assert any(not f["rows"] for f in files.values())  # the case is met


def test_write_csv_neutralised_and_parquet_intact(tmp_path):
    out = build_audiences(CUSTOMERS, SEGMENTS, QUADRANT_FRAME)
    paths = write_audiences(out, tmp_path / "audiences")
    csv = pl.read_csv(paths["csv"])
    emails = set(csv["email"])
    assert '\'=HYPERLINK("http://evil")@x.com' in emails
    assert not any(e.startswith("=") for e in emails)
    parquet = pl.read_parquet(paths["parquet"])
    assert parquet.equals(out)


def test_audience_rows_come_sorted_by_kind_audience_and_customer_whatever_the_input_order():
    """The files' rows are in a fixed order (a diff of two days' files shows only what moved):
    kind, then audience, then customer id, however the marts' rows came."""
    ids = [f"c{i:02d}" for i in range(12)]
    shuffled = [ids[i] for i in (7, 2, 11, 0, 5, 9, 1, 10, 3, 8, 6, 4)]
    customers = pl.DataFrame(
        {"customer_id": shuffled, "email": [f"{c}@x.com" for c in shuffled]}
    ).with_columns(marketing_consent=pl.col("customer_id") != "c05")
    segments = pl.DataFrame(
        {"customer_id": ids[::-1], "segment": [RFM_SEGMENTS[i % 3] for i in range(12)]}
    )
    quadrants = pl.DataFrame(
        {"customer_id": shuffled[:9], "quadrant": [QUADRANTS[i % 2] for i in range(9)]}
    )
    rows = build_audiences(customers, segments=segments, quadrants=quadrants)
    keys = rows.select("audience_kind", "audience", "customer_id").rows()
    assert keys == sorted(keys)
    assert len(keys) == 11 + 8  # c05 withheld consent; every other person once per kind
    assert rows.filter(pl.col("customer_id") == "c05").height == 0


def test_a_full_audience_disk_names_the_folder_and_leaves_no_half_built_files(
    tmp_path, monkeypatch
):
    """A full disk under the audience folder failed the step with "No space left on device
    (os error 28)", no path, no remedy, and the half-built folder kept the space (a review)."""
    import errno

    import pytest

    from engagement_box.activation import audiences

    out = build_audiences(CUSTOMERS, SEGMENTS, QUADRANT_FRAME)
    parts = [p for _, p in out.group_by("audience_kind", "audience", maintain_order=True)]
    folder = tmp_path / "audiences"
    written = audiences.export_audience_parts(parts, folder)  # a version in place
    real = audiences.write_audiences

    full = (
        OSError(errno.ENOSPC, "No space left on device", str(folder / "x.csv")),
        # polars' writers raise the same as a ComputeError (a re-review, on a tmpfs)
        pl.exceptions.ComputeError("No space left on device (os error 28)"),
    )
    for error in full:

        def disk_fills(frame, out_dir, name="audiences", error=error):
            if out_dir.name == ".quadrant.building":
                raise error
            return real(frame, out_dir, name=name)

        monkeypatch.setattr(audiences, "write_audiences", disk_fills)
        with pytest.raises(audiences.AudienceWriteError) as failed:
            audiences.export_audience_parts(parts, folder)
        said = str(failed.value)
        assert said.startswith(
            f"the audience files could not be written in {folder}: No space left"
        ), said
        assert "free space or fix the folder's permissions, then run again" in said
        assert not list(folder.glob(".*.building"))
        assert sorted(p.name for p in folder.iterdir()) == ["quadrant", "rfm_segment"]
        assert all((folder / k).is_dir() for k in ("quadrant", "rfm_segment")) and written


def test_a_folder_of_the_spark_engines_audiences_is_not_taken_for_the_duckdb_engines(tmp_path):
    """The Spark engine wrote its audience files with no record of their version (a consumer
    could not tell them whole, a review); with one, its version numbers are its own: the
    DuckDB engine does not take Spark's version 3 for its version 3. A record from before
    engines were named is the DuckDB engine's."""
    import json

    from engagement_box.activation import audiences

    audiences.record_version(tmp_path, 3, engine="spark")
    assert audiences.recorded_version(tmp_path) is None
    assert audiences.recorded_version(tmp_path, engine="spark") == 3
    audiences.record_version(tmp_path, 3)
    assert audiences.recorded_version(tmp_path) == 3
    (tmp_path / audiences.WRITTEN_FROM).write_text(json.dumps({"snapshot_id": 2, "as_of": None}))
    assert audiences.recorded_version(tmp_path) == 2


def test_a_file_at_a_kinds_place_does_not_stop_later_exports(tmp_path):
    """A file where a kind's folder goes was moved aside by the swap as `.quadrant.old` and
    stayed (rmtree leaves files), and every later export failed renaming the new folder onto
    it, saying "Not a directory" of the folder and to free space (a review)."""
    from engagement_box.activation import audiences

    out = build_audiences(CUSTOMERS, SEGMENTS, QUADRANT_FRAME)
    parts = [p for _, p in out.group_by("audience_kind", "audience", maintain_order=True)]
    folder = tmp_path / "audiences"
    folder.mkdir()
    (folder / "quadrant").write_text("not a folder")
    (folder / ".rfm_segment.building").write_text("left by hand")
    for _ in range(2):
        written = audiences.export_audience_parts(parts, folder)
        assert sorted(p.name for p in folder.iterdir()) == ["quadrant", "rfm_segment"]
        assert all((folder / k).is_dir() for k in ("quadrant", "rfm_segment"))
        assert all(Path(f["csv"]).is_file() for f in written.values())


def test_a_folder_last_written_for_another_warehouse_is_replaced_with_a_warning(
    december_run, tmp_path
):
    """Two warehouses given one ENGAGEMENT_AUDIENCE_DIR (or one copied or moved with its folder)
    replace each other's audience files on every run: the run that replaces another's files
    says so in its log and metadata, and the next one, replacing its own, says nothing."""
    import dagster as dg

    from assets.engagement import audience_exports
    from pipelines.resources import EngagementConfig, warehouse_resource
    from tests.pipeline_runs import copy_run

    run = copy_run(december_run, tmp_path)  # its folder's files were written for the original
    folder = run.database.parent / "audiences"
    resources = {
        "warehouse": warehouse_resource(run.database),
        "engagement_config": EngagementConfig(audience_dir=str(folder)),
    }

    def export() -> tuple[bool, list[str]]:
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize([audience_exports], resources=resources, instance=instance)
            said = [e.user_message for e in instance.all_logs(result.run_id)]
        (event,) = result.get_asset_materialization_events()
        metadata = event.materialization.metadata
        return metadata["replaced_another_owners_files"].value, said

    replaced, said = export()
    assert replaced
    assert any(f"the audience folder {folder} (ENGAGEMENT_AUDIENCE_DIR)" in m for m in said)
    assert not audiences.written_for_other(folder, [readers.default_working(run.database)])
    replaced, said = export()
    assert not replaced and not any("ENGAGEMENT_AUDIENCE_DIR" in m for m in said)


def test_an_erasure_that_rewrote_the_files_moves_the_records_written_at(tmp_path):
    """The version stays (the files are still that version's, less the person), but
    `written_at` moves: an importer that takes a folder only when it has not taken it yet
    would otherwise never take the files without the person (a review)."""
    from engagement_box.governance import erasure

    frame = build_audiences(CUSTOMERS, SEGMENTS, QUADRANT_FRAME)
    files = export_audiences(frame, tmp_path)
    audiences.record_version(tmp_path, 7, files=files)
    record = json.loads((tmp_path / audiences.WRITTEN_FROM).read_text())
    assert record["snapshot_id"] == 7 and record["written_at"]
    stale = {**record, "written_at": "2000-01-01T00:00:00+00:00"}
    (tmp_path / audiences.WRITTEN_FROM).write_text(json.dumps(stale))

    assert not erasure.erase_from_audiences(tmp_path, ["nobody"], [])  # nothing removed
    assert json.loads((tmp_path / audiences.WRITTEN_FROM).read_text()) == stale
    removed = erasure.erase_from_audiences(tmp_path, ["c1"], [])
    assert removed and "c1" not in (tmp_path / "rfm_segment" / "at_risk.csv").read_text()
    champions = pl.read_csv(tmp_path / "rfm_segment" / "champions.csv", infer_schema=False)
    assert champions["email"].to_list() == ['\'=HYPERLINK("http://evil")@x.com']  # still neutral
    after = json.loads((tmp_path / audiences.WRITTEN_FROM).read_text())
    assert after == {**stale, "written_at": after["written_at"]}
    assert after["written_at"] != stale["written_at"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_erasure_does_not_follow_links_out_of_the_audience_folder(tmp_path):
    """A kind's folder replaced by a link to another folder had erasure rewrite that folder's
    files (a row removed, a cell quoted) though they were not the run's (a security review).
    Links are not followed; each is said, with where it points."""
    from engagement_box.governance import erasure

    folder, elsewhere = tmp_path / "audiences", tmp_path / "elsewhere"
    export_audiences(build_audiences(CUSTOMERS, SEGMENTS, QUADRANT_FRAME), folder)
    elsewhere.mkdir()
    theirs = "customer_id,email,note\nc1,c1@x.com,keep?\nc9,o@x.com,=SUM(1;2)\n"
    (elsewhere / "list.csv").write_text(theirs)
    (folder / "rfm_segment").rename(tmp_path / "moved")
    (folder / "rfm_segment").symlink_to(elsewhere)
    (folder / "quadrant" / "linked.csv").symlink_to(elsewhere / "list.csv")

    passed: dict[str, str] = {}
    removed = erasure.erase_from_audiences(folder, ["c1"], [], passed=passed)
    assert (elsewhere / "list.csv").read_text() == theirs
    assert all(not path.startswith("rfm_segment") and "linked" not in path for path in removed)
    assert removed  # the quadrant files, real ones, still lose the person
    assert sorted(passed) == [str(folder / "quadrant" / "linked.csv"), str(folder / "rfm_segment")]
    assert passed[str(folder / "rfm_segment")].startswith(f"a link to {elsewhere}: ")


def test_audiences_that_would_write_one_file_are_found():
    """Two audiences of a kind whose names differ only by punctuation or case would write one
    file (the second's rows replacing the first's without a word): the module refuses such a
    map when it loads; the shipped one has none."""
    from engagement_box.activation.audiences import AUDIENCES, _same_file_names

    assert _same_file_names(AUDIENCES) == []
    clashing = {"rfm_segment": ("At Risk", "At-Risk", "Lost"), "quadrant": ("Lost",)}
    assert _same_file_names(clashing) == ["rfm_segment: At Risk and At-Risk"]


def test_audiences_of_a_version_under_other_segment_names_are_said_without_play():
    """A version published before a release renamed a segment: its audience files are written
    under the version's names (a withdrawal must still reach them) with no play, and the step
    names them, where it wrote the empty play silently (a review renaming "At Risk")."""
    from engagement_box.activation import audiences as aud

    customers = pl.DataFrame(
        {"customer_id": ["a", "b"], "email": ["a@x.io", "b@x.io"], "marketing_consent": [True] * 2}
    )
    segments = pl.DataFrame({"customer_id": ["a", "b"], "segment": ["Champions", "Slipping Away"]})
    frame = aud.build_audiences(customers, segments=segments)
    assert aud.without_play(frame) == ["rfm_segment/Slipping Away"]
    assert frame.filter(pl.col("audience") == "Champions")["play"].item() is not None
    said = aud.without_play_message(aud.without_play(frame))
    assert "rfm_segment/Slipping Away" in said and "earlier release" in said
    current = segments.with_columns(segment=pl.lit("Champions"))
    assert aud.without_play(aud.build_audiences(customers, segments=current)) == []


def test_each_segment_gets_the_play_its_name_calls_for():
    """The plays are words in a mapping, and the e2e test compares the marts with the same
    mapping, so two plays swapped passed every test (a mutation review): Champions rewarded,
    Hibernating reactivated at low cost, only Can't Lose Them won back at any cost."""
    from engagement_box.value.rfm import SEGMENT_PLAYS as PLAYS

    assert PLAYS["Champions"].startswith("Reward") and "leave out" not in PLAYS["Champions"]
    assert PLAYS["Hibernating"].startswith("Low-cost") and "leave out" in PLAYS["Hibernating"]
    assert [s for s, play in PLAYS.items() if "any cost" in play] == ["Can't Lose Them"]
    assert PLAYS["At Risk"].startswith("Win back") and PLAYS["New Customers"].startswith("Onboard")
    assert PLAYS["Prospect"].startswith("First purchase")
