"""Erasure from the Spark engine's lake: every retained version's files rewritten without the
person, other rows unchanged, a version folder swapped whole (no Spark needed: the lake is
written here with polars in the layout `engagement_box/spark/lake.py` publishes)."""

import json
import os
import shutil
from datetime import date

import duckdb
import polars as pl
import pytest

from engagement_box.governance import erasure
from engagement_box.spark import lake


def version(root, mart: str, snapshot_id: int, *parts: pl.DataFrame) -> None:
    folder = lake.history_dir(root, mart, snapshot_id)
    folder.mkdir(parents=True)
    for i, part in enumerate(parts):
        part.write_parquet(folder / f"part-{i:05d}.parquet")


def values(ids: list[str], as_of: date) -> pl.DataFrame:
    return pl.DataFrame(
        {"customer_id": ids, "clv": [float(len(c)) * 1.5 for c in ids], "as_of": [as_of] * len(ids)}
    )


@pytest.fixture
def lake_dir(tmp_path):
    root = tmp_path / "lake"
    version(root, "customer_value", 1, values(["C1", "C2"], date(2025, 5, 31)))
    version(
        root,
        "customer_value",
        2,
        values(["C2", "C1", "C3"], date(2025, 6, 30)),
        values(["C4"], date(2025, 6, 30)),
    )
    version(root, "model_fit", 1, pl.DataFrame({"model": ["bgnbd"], "value": [0.5]}))
    (root / "marts").mkdir()
    record = {
        "snapshot_id": 2,
        "marts": {
            "customer_value": "history/customer_value/snapshot_id=2",
            "model_fit": "history/model_fit/snapshot_id=1",
        },
    }
    (root / "marts" / lake.POINTER).write_text(json.dumps(record), encoding="utf-8")
    return root


def every_row(root) -> pl.DataFrame:
    return pl.read_parquet(root / "history" / "customer_value" / "snapshot_id=*" / "*.parquet")


def test_every_version_is_rewritten_without_the_customer(lake_dir):
    before = every_row(lake_dir)
    removed = lake.erase_customers(lake_dir, ["C1"])
    assert removed == {"customer_value": 2}
    after = every_row(lake_dir)
    assert "C1" not in after["customer_id"].to_list()
    assert after.equals(before.filter(pl.col("customer_id") != "C1"))  # the rest, in order
    # model_fit has no customer column: untouched; no hidden folder is left behind
    assert pl.read_parquet(lake_dir / "history" / "model_fit" / "snapshot_id=1").height == 1
    assert not [p for p in (lake_dir / "history").rglob(".*")]
    # an analyst's DuckDB reads the current and every version, without the person
    con = duckdb.connect()
    lake.attach(con, lake_dir)
    assert con.execute("SELECT count(*) FROM marts.customer_value").fetchone()[0] == 3
    history = con.execute(
        "SELECT snapshot_id, count(*) FROM marts.history_customer_value GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert history == [(1, 1), (2, 3)]


def test_a_reader_sees_a_version_whole_before_or_after(lake_dir, monkeypatch):
    """At every rename the version folder holds either all the old files or all the new ones
    (or is missing for an instant), never some of each."""
    folder = lake.history_dir(lake_dir, "customer_value", 2)
    old = {p.name: pl.read_parquet(p) for p in folder.glob("*.parquet")}
    seen = []
    rename = os.rename

    def watched(src, dst):
        rename(src, dst)
        if folder.exists():
            seen.append({p.name: pl.read_parquet(p) for p in folder.glob("*.parquet")})
        else:
            seen.append(None)

    monkeypatch.setattr(lake.os, "rename", watched)
    lake.erase_customers(lake_dir, ["C3"])
    new = {p.name: pl.read_parquet(p) for p in folder.glob("*.parquet")}
    assert sorted(new) == sorted(old) and not new["part-00000.parquet"].equals(
        old["part-00000.parquet"]
    )
    for state in seen:
        assert (
            state is None
            or all(state[k].equals(new[k]) for k in new)
            and sorted(state) == (sorted(new))
        )


def test_nothing_to_erase_leaves_the_files(lake_dir):
    folder = lake.history_dir(lake_dir, "customer_value", 1)
    inode = folder.stat().st_ino
    assert lake.erase_customers(lake_dir, ["nobody"]) == {}
    assert lake.erase_customers(lake_dir, []) == {}
    assert folder.stat().st_ino == inode


def test_erase_reaches_the_lake_by_email(lake_dir, tmp_path):
    """`engagement-box erase --email` on a Spark engine's lake: the lake's own staged profiles
    give the customer id; the working tables, which hold the staged rows, are deleted."""
    staged = lake_dir / "tables" / "staging.customers" / "w1"
    staged.mkdir(parents=True)
    pl.DataFrame(
        {"customer_id": ["C2", "C9"], "email": [" Jane@Example.com", "x@y.z"]}
    ).write_parquet(staged / "part-00000.parquet")
    (staged.parent / "_current").write_text("w1", encoding="utf-8")
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    report = erasure.erase(con, email="jane@example.com", lake=lake_dir, salt="s")
    assert report.lake_rows_removed == {"customer_value": 2}
    assert report.found
    assert "C2" not in every_row(lake_dir)["customer_id"].to_list()
    assert not (lake_dir / "tables").exists()
    # a path without a published lake is left alone
    assert (
        erasure.erase(con, customer_id="C1", lake=tmp_path / "none", salt="s").lake_rows_removed
        == {}
    )


def test_an_erasure_after_the_lakes_tables_went_says_the_persons_keys_were_not_read(
    lake_dir, tmp_path
):
    """A Spark user's review: the first erasure deleted the lake's working tables, so a second
    one by customer id could not read the person's email and handle from their profile; it
    logged the id alone and the next Spark run staged their social events by handle again, with
    no word. The report says so (the CLI says the next Spark run erases them when it reads the
    profile: `test_spark_erasure.py`); with a profile to read, it does not."""
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    gone = erasure.erase(con, customer_id="C1", lake=lake_dir, salt="s")
    assert gone.lake_tables_missing and gone.profile_keys_unread
    staged = lake_dir / "tables" / "staging.customers" / "w1"
    staged.mkdir(parents=True)
    pl.DataFrame({"customer_id": ["C2"], "email": ["jane@example.com"]}).write_parquet(
        staged / "part-00000.parquet"
    )
    (staged.parent / "_current").write_text("w1", encoding="utf-8")
    read = erasure.erase(con, customer_id="C2", lake=lake_dir, salt="s")
    assert not read.lake_tables_missing and not read.profile_keys_unread


def test_a_guest_erased_by_email_leaves_the_lake_with_the_orders_without_one(lake_dir, tmp_path):
    """A guest (no profile) erased by email stayed in every version of a Spark-only lake:
    its guest id was looked for only in the DuckDB working database (a re-review). The lake's
    staged orders give it; an id under which someone else's email is too stays."""
    staged = lake_dir / "tables" / "staging.orders" / "w1"
    staged.mkdir(parents=True)
    pl.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "customer_id": ["C3", "C3", "C4", "C4"],
            "email": ["ANNA@guest.example ", None, "anna@guest.example", "other@x.example"],
        }
    ).write_parquet(staged / "part-00000.parquet")
    (staged.parent / "_current").write_text("w1", encoding="utf-8")
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    report = erasure.erase(con, email="anna@guest.example", lake=lake_dir, salt="s")
    assert report.guest_ids_followed == 1
    assert report.lake_rows_removed == {"customer_value": 1}
    left = every_row(lake_dir)["customer_id"].to_list()
    assert "C3" not in left and "C4" in left
    assert erasure.subject_hash("C3", "customer_id", "s") in erasure.erased_subject_hashes(con)


def staged(lake_dir, table: str, frame: pl.DataFrame) -> None:
    folder = lake_dir / "tables" / table / "w1"
    folder.mkdir(parents=True)
    frame.write_parquet(folder / "part-00000.parquet")
    (folder.parent / "_current").write_text("w1", encoding="utf-8")


def test_a_handle_or_an_asked_guest_id_reaches_the_lake(lake_dir, tmp_path):
    """Erasing by handle found no one in a lake (its profiles were searched by id and email
    only), and a guest id asked for did not bring its orders' one email, so the person's other
    guest id stayed in every version (re-reviews)."""
    staged(
        lake_dir,
        "staging.customers",
        pl.DataFrame(
            {"customer_id": ["C1", "C9"], "email": ["a@x.example", None]},
        ).with_columns(social_handles=pl.Series(["@Ann;@ann_shop", "zed"])),
    )
    orders = pl.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "customer_id": ["C3", "C3", "C4"],
            "email": ["g@x.example", "g@x.example", "g@x.example"],
        }
    )
    staged(lake_dir, "staging.orders", orders)
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    by_handle = erasure.erase(con, handle="ANN_shop", lake=lake_dir, salt="s")
    assert by_handle.lake_rows_removed == {"customer_value": 2}  # C1 in both versions
    staged(lake_dir, "staging.orders", orders)  # the next Spark run's tables
    asked = erasure.erase(con, customer_id="C3", lake=lake_dir, salt="s")
    assert asked.guest_ids_followed == 1  # C4: only the guest's email under it
    assert {"C3", "C4"}.isdisjoint(every_row(lake_dir)["customer_id"].to_list())


def test_an_erasure_finding_no_one_keeps_the_tables_and_the_audiences_find_emails(
    lake_dir, tmp_path
):
    """Every erasure deleted the lake's working tables, so the next one by email found no one
    (and said "nothing matched") while the versions kept the person: the tables stay when
    the person is not in the lake, and the audiences' emails give the ids when they are gone."""
    staged(lake_dir, "staging.customers", pl.DataFrame({"customer_id": ["C9"], "email": ["z@z"]}))
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    nobody = erasure.erase(con, email="nobody@x.example", lake=lake_dir, salt="s")
    assert nobody.lake_rows_removed == {} and (lake_dir / "tables").is_dir()

    shutil.rmtree(lake_dir / "tables")  # as an earlier erasure left it
    version(
        lake_dir,
        erasure.LAKE_AUDIENCES,
        2,
        pl.DataFrame({"customer_id": ["C2"], "email": [" Jane@Example.com"]}),
    )
    # no staged profile left to count the address's carriers on: said shared to be taken
    with pytest.raises(erasure.SharedKey, match="cannot be told"):
        erasure.erase(con, email="jane@example.com", lake=lake_dir, salt="s")
    report = erasure.erase(con, email="jane@example.com", lake=lake_dir, salt="s", shared=True)
    assert report.lake_rows_removed == {"customer_value": 2, erasure.LAKE_AUDIENCES: 1}
    assert "C2" not in every_row(lake_dir)["customer_id"].to_list()


def test_the_lakes_audiences_mart_is_named_as_the_spark_engine_names_it():
    from engagement_box.spark.audiences import MART

    assert erasure.LAKE_AUDIENCES == MART


def test_a_lakes_gift_recipient_stays_and_a_profiles_email_is_followed(lake_dir, tmp_path):
    """Erasing guest id C3, whose one order was a gift to C1's address, erased C1 from every
    version (a re-review); erasing C2 by id did not follow C2's email to C2's guest orders under
    C4, which the next Spark run staged again (a re-review)."""
    staged(
        lake_dir,
        "staging.customers",
        pl.DataFrame({"customer_id": ["C1", "C2"], "email": ["rita@x.example", "ann@x.example"]}),
    )
    orders = pl.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "customer_id": ["C3", "C4", "C4"],
            "email": ["rita@x.example", "ann@x.example", None],
        }
    )
    staged(lake_dir, "staging.orders", orders)
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    gift = erasure.erase(con, customer_id="C3", lake=lake_dir, salt="s")
    left = every_row(lake_dir)["customer_id"].to_list()
    assert "C3" not in left and "C1" in left and gift.guest_ids_followed == 0

    staged(
        lake_dir,
        "staging.customers",
        pl.DataFrame({"customer_id": ["C1", "C2"], "email": ["rita@x.example", "ann@x.example"]}),
    )
    staged(lake_dir, "staging.orders", orders)
    ann = erasure.erase(con, customer_id="C2", lake=lake_dir, salt="s")
    assert ann.guest_ids_followed == 1
    erased = erasure.erased_subject_hashes(con)
    assert erasure.subject_hash("ann@x.example", "email", "s") in erased
    assert erasure.subject_hash("C4", "customer_id", "s") in erased
    assert {"C2", "C4"}.isdisjoint(every_row(lake_dir)["customer_id"].to_list())


def test_a_person_only_in_the_lakes_tables_is_found_and_the_tables_go(lake_dir, tmp_path):
    """A Spark run stopped by a blocking check leaves every staged person in the lake's tables
    and no version: erasing one said "nothing matched" and left their rows (a re-review)."""
    staged(lake_dir, "staging.customers", pl.DataFrame({"customer_id": ["C7"], "email": ["c@x.y"]}))
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    report = erasure.erase(con, email="c@x.y", lake=lake_dir, salt="s")
    assert report.found and not (lake_dir / "tables").exists()


def six_on_a_till(lake_dir) -> pl.DataFrame:
    """Six profiles C1-C6 staged in the lake on one shop's address, each in a version."""
    six = pl.DataFrame(
        {"customer_id": [f"C{i}" for i in range(1, 7)], "email": ["till@shop.example"] * 6}
    )
    version(
        lake_dir, "customer_value", 3, values([f"C{i}" for i in range(1, 7)], date(2025, 7, 31))
    )
    staged(lake_dir, "staging.customers", six)
    return six


def test_a_till_address_stays_a_placeholder_after_one_of_its_profiles_is_erased(lake_dir, tmp_path):
    """Six profiles on a shop's address: erasing one left five in the lake, which then counted
    as one person and were erased with the next (a re-review); identity counts the erased
    carrier too. A handle listed twice on one profile counts once."""
    six = six_on_a_till(lake_dir)
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    erasure.erase(con, customer_id="C1", lake=lake_dir, salt="s")
    staged(lake_dir, "staging.customers", six.filter(pl.col("customer_id") != "C1"))
    erasure.erase(con, customer_id="C2", lake=lake_dir, salt="s")
    left = set(every_row(lake_dir)["customer_id"].to_list())
    assert {"C3", "C4", "C5", "C6"} <= left and not {"C1", "C2"} & left

    twice = pl.DataFrame(
        {
            "customer_id": ["D1", "D2", "D3", "D4", "D5"],
            "email": [None] * 5,
            "social_handles": ["@Ann;ann", "ann", "ann", "ann", "ann"],
        }
    )
    version(lake_dir, "customer_value", 4, values(["D1", "D2", "D5"], date(2025, 8, 31)))
    staged(lake_dir, "staging.customers", twice)
    erasure.erase(con, customer_id="D1", lake=lake_dir, salt="s")
    assert not {"D1", "D2", "D5"} & set(every_row(lake_dir)["customer_id"].to_list())


def test_an_erasure_by_a_lakes_shared_address_is_refused_unless_said_shared(lake_dir, tmp_path):
    """An address on six of the lake's profiles (a Spark-only warehouse: no staged rows here)
    names no one person: refused, nothing erased; with shared=True all six go."""
    six_on_a_till(lake_dir)
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    with pytest.raises(erasure.SharedKey, match=r"on 6 customer profiles .*\(C1, C2, C3"):
        erasure.erase(con, email="Till@Shop.example", lake=lake_dir, salt="s")
    assert {f"C{i}" for i in range(1, 7)} <= set(every_row(lake_dir)["customer_id"].to_list())
    erasure.erase(con, email="till@shop.example", lake=lake_dir, salt="s", shared=True)
    assert not {f"C{i}" for i in range(1, 7)} & set(every_row(lake_dir)["customer_id"].to_list())


def test_an_erasure_by_email_is_refused_where_no_profile_is_left_to_count_its_carriers(
    lake_dir, tmp_path
):
    """A Spark-only warehouse whose lake tables an earlier erasure deleted: a till's address
    could not be counted, so an erasure by it was taken and its next run kept out every
    stranger carrying it (a re-review). Refused unless shared=True."""
    version(lake_dir, "customer_value", 3, values(["C1", "C2"], date(2025, 7, 31)))
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    with pytest.raises(erasure.SharedKey, match="whether the email till@shop.example is one"):
        erasure.erase(con, email="till@shop.example", lake=lake_dir, salt="s")
    with pytest.raises(erasure.SharedKey, match="the handle @till "):
        erasure.erase(con, handle="@Till", lake=lake_dir, salt="s")
    assert not con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'erasure_log'"
    ).fetchone()[0] or con.execute("SELECT count(*) FROM staging.erasure_log").fetchone() == (0,)
    erasure.erase(con, email="till@shop.example", lake=lake_dir, salt="s", shared=True)
    assert con.execute("SELECT count(*) FROM staging.erasure_log").fetchone() == (1,)
    assert erasure.erase(con, customer_id="C1", lake=lake_dir, salt="s").found


def test_a_lake_without_a_version_loses_the_tables_that_hold_the_person(lake_dir, tmp_path):
    """A first Spark run that staged and stopped before publishing: the erasure said the
    person was found and left their staged rows (a re-review)."""
    shutil.rmtree(lake_dir / "history")
    shutil.rmtree(lake_dir / "marts")
    staged(lake_dir, "staging.customers", pl.DataFrame({"customer_id": ["C1"], "email": ["j@x.y"]}))
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    assert erasure.erase(con, email="j@x.y", lake=lake_dir, salt="s").found
    assert not (lake_dir / "tables").exists()


def test_a_spark_only_erase_says_what_the_lakes_versions_keep(
    lake_dir, tmp_path, monkeypatch, capsys
):
    """`engagement-box erase` where only a Spark lake holds versions: it said that rows were
    removed from the lake's versions, and not (as the DuckDB warehouse's erase says) that the
    other customers' numbers in those versions stay as computed with the person (a review)."""
    from engagement_box import cli

    monkeypatch.setenv("ENGAGEMENT_LAKE_DIR", str(lake_dir))
    monkeypatch.setenv("ENGAGEMENT_WAREHOUSE", str(tmp_path / "w" / "engagement.duckdb"))
    monkeypatch.setenv("ENGAGEMENT_AUDIENCE_DIR", str(tmp_path / "audiences"))
    monkeypatch.delenv("ENGAGEMENT_WORKING_DB", raising=False)
    assert cli.main(["erase", "--customer-id", "C1"]) == 0
    out = capsys.readouterr().out
    assert "removed from the Spark lake's versions" in out, out
    assert "other customers' numbers in the versions that held the person stay as computed" in out
    assert "the next run (the Spark job) publishes a version" in out


def test_an_erase_reaches_the_audience_folder_of_either_engine(lake_dir, tmp_path):
    """Each engine writes its audiences to a folder of its own (README); an erase run with the
    DuckDB engine's settings rewrote only ENGAGEMENT_AUDIENCE_DIR's and left the person in the
    Spark engine's files (and the other way round: a review). Each engine remembers its
    folders, and an erase rewrites those it wrote last; a re-review found a folder another
    warehouse had written since rewritten (a different person of the same id), and a lake
    named with `..` not recognised."""
    from engagement_box.activation import audiences

    def files(folder, ids):
        (folder / "quadrant").mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"customer_id": ids, "email": [f"{i}@x.org" for i in ids]}).write_csv(
            folder / "quadrant" / "cev_misers.csv"
        )

    old_folder, spark_folder = tmp_path / "old_audiences", tmp_path / "lake_audiences"
    (record,) = audiences.folder_records(None, lake_dir)
    for folder in (old_folder, spark_folder):  # ENGAGEMENT_AUDIENCE_DIR changed between runs
        files(folder, ["C1", "C2"])
        audiences.record_version(folder, 1, engine="spark", written_for=lake_dir)
        audiences.remember_folder(record, folder)
    duck_folder = tmp_path / "audiences"  # this environment's, empty
    duck_folder.mkdir()
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    (tmp_path / "x").mkdir()
    by_dots = tmp_path / "x" / ".." / lake_dir.name  # the same lake, written another way
    report = erasure.erase(con, customer_id="C1", audience_dir=duck_folder, lake=by_dots, salt="s")
    for folder in (old_folder, spark_folder):
        left = pl.read_csv(folder / "quadrant" / "cev_misers.csv")
        assert left["customer_id"].to_list() == ["C2"], folder
    assert report.audience_rows_removed == {
        str(folder.resolve() / "quadrant" / "cev_misers.csv"): 1
        for folder in (old_folder, spark_folder)
    }
    # Another warehouse writes its own people to the old folder: theirs stay.
    files(old_folder, ["C2", "C7"])
    audiences.record_version(old_folder, 4, written_for=tmp_path / "other.working.duckdb")
    report = erasure.erase(con, customer_id="C2", audience_dir=duck_folder, lake=lake_dir, salt="s")
    assert pl.read_csv(old_folder / "quadrant" / "cev_misers.csv")["customer_id"].to_list() == [
        "C2",
        "C7",
    ]
    assert pl.read_csv(spark_folder / "quadrant" / "cev_misers.csv").height == 0
    assert report.audience_folders_passed == {
        str(old_folder.resolve()): "written since for another warehouse or lake"
    }
    # The folder named by ENGAGEMENT_AUDIENCE_DIR too: each export rewrites a folder whole, so
    # one another warehouse wrote last holds that one's people (a re-review: its person of the
    # same id was erased)
    report = erasure.erase(con, customer_id="C7", audience_dir=old_folder, lake=lake_dir, salt="s")
    assert pl.read_csv(old_folder / "quadrant" / "cev_misers.csv")["customer_id"].to_list() == [
        "C2",
        "C7",
    ]
    assert report.audience_folders_passed == {
        str(old_folder.resolve()): "written since for another warehouse or lake"
    }
    # `_written_from.json` names no path (it sits beside files handed to others)
    assert str(tmp_path) not in (old_folder / audiences.WRITTEN_FROM).read_text()
    # A folder whose `_written_from.json` is lost is not taken for another's: rewritten
    (spark_folder / audiences.WRITTEN_FROM).unlink()
    files(spark_folder, ["C3", "C4"])
    report = erasure.erase(con, customer_id="C3", audience_dir=duck_folder, lake=lake_dir, salt="s")
    assert pl.read_csv(spark_folder / "quadrant" / "cev_misers.csv")["customer_id"].to_list() == [
        "C4"
    ]
    # A record edited out of shape starts again instead of failing the audience step
    record[0].write_text('{"for": "x", "folders": null}')
    audiences.remember_folder(record, spark_folder)
    assert audiences.remembered_folders([record])[0] == [spark_folder.resolve()]
    # A copy of the lake elsewhere does not take the original's folders for its own: an erase
    # there says why it leaves them.
    copy = tmp_path / "lake_copy"
    shutil.copytree(lake_dir, copy)
    folders, passed = audiences.remembered_folders(audiences.folder_records(None, copy))
    assert folders == [] and set(passed) == {str(spark_folder.resolve())}
    assert all("copied or moved" in why for why in passed.values())


def test_a_folder_named_by_path_in_its_record_is_judged_by_that_path(tmp_path):
    """A build between two commits of 2026-12-05 wrote the owner's real path into
    `_written_from.json`, which the hash that replaced it took for another warehouse's: an
    erase left this warehouse's person there and said so untruly (a re-review)."""
    import json

    from engagement_box.activation import audiences

    folder, owner = tmp_path / "aud", tmp_path / "w.working.duckdb"
    folder.mkdir()
    (folder / audiences.WRITTEN_FROM).write_text(json.dumps({"for": str(owner.resolve())}))
    assert not audiences.written_for_other(folder, [owner])
    assert audiences.written_for_other(folder, [tmp_path / "other.working.duckdb"])
    audiences.record_version(folder, 1, written_for=owner)
    assert not audiences.written_for_other(folder, [owner])
    assert audiences.written_for_other(folder, [tmp_path / "other.working.duckdb"])
