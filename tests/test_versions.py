"""Versions: snapshots, time travel, current version by as-of, migration, retention."""

from datetime import date, datetime, timedelta

import duckdb
import polars as pl
import pytest

from engagement_box import partitioned
from engagement_box.frames import write_frame
from engagement_box.governance import versions


def publish_version(con, as_of: str, segments: dict[str, str], cev: dict[str, float], **kw):
    write_frame(
        con,
        "work",
        "customer_rfm",
        pl.DataFrame({"customer_id": list(segments), "segment": list(segments.values())}),
    )
    quadrant = {c: ("Champions" if v > 10 else "Misers") for c, v in cev.items()}
    write_frame(
        con,
        "work",
        "engagement_value",
        pl.DataFrame(
            {
                "customer_id": list(cev),
                "cev": list(cev.values()),
                "quadrant": [quadrant[c] for c in cev],
            }
        ),
    )
    return versions.publish(
        con,
        ["customer_rfm", "engagement_value"],
        run_id="r",
        partition_key=kw.pop("partition_key", None),
        as_of=as_of,
        # The data published stands for the staged inputs: other data, other inputs.
        settings={"as_of": as_of, "data": repr((sorted(segments.items()), sorted(cev.items())))},
        **kw,
    )


def rows(con, sql: str):
    return con.execute(sql).fetchall()


def test_each_publish_is_a_version_that_stays_queryable(warehouse):
    first = publish_version(
        warehouse, "2025-01-31", {"a": "Champions", "b": "At Risk"}, {"a": 20, "b": 1}
    )
    second = publish_version(
        warehouse, "2025-02-28", {"a": "At Risk", "b": "At Risk"}, {"a": 5, "b": 1}
    )

    assert (first.snapshot_id, second.snapshot_id) == (1, 2)
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm ORDER BY 1") == [
        ("a", "At Risk"),
        ("b", "At Risk"),
    ]
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm_at(1) ORDER BY 1") == [
        ("a", "Champions"),
        ("b", "At Risk"),
    ]
    assert rows(
        warehouse, "SELECT snapshot_id, as_of::VARCHAR, is_current FROM marts.snapshots"
    ) == [
        (1, "2025-01-31", False),
        (2, "2025-02-28", True),
    ]


def test_a_version_published_when_the_data_moved_back_replaces_the_current_one(warehouse):
    """Orders cancelled (or their buyer erased) moved the data's last day back under the
    current version: the next run's version has an earlier as-of, and stayed not current for
    good (the current version was the latest as-of), so the analysts kept the cancelled orders,
    and each run said "nothing to do". It replaces the current version and every version as far
    ahead, whether run for the same month or a later one (the schedule's next month), in
    `marts` and in the migration chain; the daily versions of a month stay in the chain, a
    backfill of an earlier month replaces nothing, and an unchanged rerun has nothing to do."""
    july, august = "2026-07-01", "2026-08-01"
    publish_version(warehouse, "2026-06-30", {"a": "Loyal"}, {"a": 5}, partition_key="2026-06-01")
    stale = publish_version(
        warehouse, "2026-07-03", {"a": "Champions"}, {"a": 20}, partition_key=july
    )
    assert stale.current
    # The July order cancelled: July's rerun is as of 06-30, with other inputs than June's.
    moved = publish_version(warehouse, "2026-06-30", {"a": "Lost"}, {"a": 4}, partition_key=july)
    assert (moved.published, moved.current) == (True, True)
    # what it replaced, for the run's last line (a review: the CLI said only "published version
    # 3 (as of 2026-06-30)", the day after "version 2 (as of 2026-07-03)")
    assert moved.replaced == (2, "2026-07-03")
    assert stale.replaced is None
    assert rows(warehouse, "SELECT segment FROM marts.customer_rfm") == [("Lost",)]
    assert rows(warehouse, "SELECT snapshot_id FROM marts.snapshots WHERE is_current") == [(3,)]
    assert versions.migration_chain(warehouse) == [3]  # 2 replaced; 1 and 3 share an as-of
    assert versions.version_with_inputs(warehouse, stale.inputs_fingerprint) is None
    assert versions.version_with_inputs(warehouse, moved.inputs_fingerprint) == 3  # nothing to do

    # The daily versions of a month: each a link of the chain.
    for day, segment in (("2026-07-10", "Active"), ("2026-07-20", "Champions")):
        publish_version(warehouse, day, {"a": segment}, {"a": 9}, partition_key=july)
    assert versions.migration_chain(warehouse) == [3, 4, 5]
    # The month changed (the schedule runs August), then the buyer of the 07-11..07-20 orders
    # was erased: August's run is as of 07-10, and replaces July's version of 07-20.
    august_run = publish_version(
        warehouse, "2026-07-10", {"a": "Erased"}, {"a": 8}, partition_key=august
    )
    assert august_run.current and august_run.replaced == (5, "2026-07-20")
    assert versions.migration_chain(warehouse) == [3, 6]
    backfill = publish_version(
        warehouse, "2026-05-31", {"a": "New"}, {"a": 1}, partition_key="2026-05-01"
    )
    assert not backfill.current and backfill.replaced is None
    assert versions.migration_chain(warehouse) == [7, 3, 6]
    assert rows(warehouse, "SELECT snapshot_id FROM marts.snapshots WHERE is_current") == [(6,)]
    # Analysts choose a version by its as-of with `stands_for_as_of`: 1 and 3 share 06-30, and
    # 5 (07-20) was replaced, so a subquery by as-of alone found two rows, or the replaced one.
    stands = "SELECT snapshot_id FROM marts.snapshots WHERE stands_for_as_of ORDER BY as_of"
    assert rows(warehouse, stands) == [(7,), (3,), (6,)]
    assert rows(
        warehouse,
        "SELECT count(*) FROM marts.customer_rfm_at((SELECT snapshot_id FROM marts.snapshots "
        "WHERE as_of = DATE '2026-06-30' AND stands_for_as_of))",
    ) == [(1,)]


def test_a_snapshots_view_from_before_stands_for_as_of_gets_the_column(warehouse):
    publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    warehouse.execute(
        "CREATE OR REPLACE VIEW marts.snapshots AS SELECT l.*, true AS is_current "
        "FROM marts.snapshot_log AS l"
    )
    versions.ensure_version_tables(warehouse)
    assert rows(warehouse, "SELECT snapshot_id, stands_for_as_of FROM marts.snapshots") == [
        (1, True)
    ]
    # Replacing a view drops its descriptions: they are written again with it.
    described = dict(
        rows(
            warehouse,
            "SELECT column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'marts' AND table_name = 'snapshots'",
        )
    )
    assert described["stands_for_as_of"].startswith("True for the one retained version")
    assert described["is_current"] == "True for exactly the version marts.* holds."
    assert rows(
        warehouse,
        "SELECT comment IS NOT NULL FROM duckdb_views() "
        "WHERE schema_name = 'marts' AND view_name = 'snapshots'",
    ) == [(True,)]


def test_settings_in_python_text_from_before_the_typed_json_read_as_later_versions(warehouse):
    """Versions published before settings were typed JSON hold 'None', 'True', 'False' (an
    upgrade's review: `settings->>'purchase_model' IS NOT NULL` listed them as pinned to a
    model named None); the next publish's check of the version tables makes them JSON."""
    publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    old = '{"currency": "USD", "margin": "0.1", "pinned": "False", "purchase_model": "None"}'
    warehouse.execute("UPDATE marts.snapshot_log SET settings = $s", {"s": old})
    versions.ensure_version_tables(warehouse)
    got = rows(
        warehouse,
        "SELECT settings->>'purchase_model' IS NULL, json_type(settings->'pinned'), "
        "settings->>'margin', settings->>'currency' FROM marts.snapshot_log",
    )
    assert got == [(True, "BOOLEAN", "0.1", "USD")]
    assert versions._typed_settings(warehouse) == 0  # once done, nothing to change


def test_a_backfill_with_the_inputs_of_the_data_moved_back_does_not_stand_for_the_next_run(
    warehouse,
):
    """The July order cancelled, then a backfill of June (as of 06-30, the data's end again)
    was published first: not current (a backfill replaces nothing), and its inputs, those the
    next run of the current month has, made that run say "nothing to do", so the version with
    the cancelled order stayed current for good (review). That run publishes, and is current;
    after it, nothing to do."""
    august = "2026-08-01"
    publish_version(warehouse, "2026-06-30", {"a": "Loyal"}, {"a": 5}, partition_key="2026-06-01")
    publish_version(warehouse, "2026-07-05", {"a": "Champions"}, {"a": 20}, partition_key=august)
    backfill = publish_version(
        warehouse, "2026-06-30", {"a": "Lost"}, {"a": 4}, partition_key="2026-06-01"
    )
    assert not backfill.current
    fingerprint = backfill.inputs_fingerprint
    assert versions.version_with_inputs(warehouse, fingerprint, "2026-06-01", "2026-06-30") == 3
    assert versions.version_with_inputs(warehouse, fingerprint, august, "2026-06-30") is None
    run = publish_version(warehouse, "2026-06-30", {"a": "Lost"}, {"a": 4}, partition_key=august)
    assert (run.published, run.current) == (True, True)
    assert versions.migration_chain(warehouse) == [4]
    assert versions.version_with_inputs(warehouse, fingerprint, august, "2026-06-30") == 4


def test_backfill_of_an_earlier_month_adds_history_but_keeps_the_current_version(warehouse):
    publish_version(warehouse, "2025-03-31", {"a": "Champions"}, {"a": 20})
    backfill = publish_version(warehouse, "2025-01-31", {"a": "New Customers"}, {"a": 2})

    assert not backfill.current
    assert rows(warehouse, "SELECT segment FROM marts.customer_rfm") == [("Champions",)]
    assert rows(warehouse, "SELECT segment FROM marts.customer_rfm_at(2)") == [("New Customers",)]


def test_a_version_is_written_once_and_marts_shows_it(warehouse):
    """The rows of a version are written once (a whole work table's: in `history_rows`);
    `history.<mart>` and `marts.<mart>` are views of them (a warehouse from before had a copy in
    marts: the next current publish drops it)."""
    warehouse.execute("CREATE SCHEMA marts")
    warehouse.execute("CREATE TABLE marts.customer_rfm AS SELECT 'old' AS customer_id")
    publish_version(warehouse, "2025-03-31", {"a": "Champions", "b": "At Risk"}, {"a": 20})
    kinds = "SELECT table_name FROM duckdb_tables() WHERE schema_name = $s ORDER BY 1"
    assert "customer_rfm" not in [r[0] for r in warehouse.execute(kinds, {"s": "marts"}).fetchall()]
    assert "customer_rfm" not in [
        r[0] for r in warehouse.execute(kinds, {"s": "history"}).fetchall()
    ]
    assert "customer_rfm" in [
        r[0] for r in warehouse.execute(kinds, {"s": "history_rows"}).fetchall()
    ]
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm ORDER BY 1") == [
        ("a", "Champions"),
        ("b", "At Risk"),
    ]
    publish_version(warehouse, "2025-01-31", {"a": "New Customers"}, {"a": 2})  # a backfill
    assert rows(warehouse, "SELECT count(*) FROM marts.customer_rfm") == [(2,)]
    publish_version(warehouse, "2025-04-30", {"c": "Loyal"}, {"c": 3})
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm") == [("c", "Loyal")]


def test_segment_migration_counts_customers_and_value_moved(warehouse):
    publish_version(warehouse, "2025-01-31", {"a": "Champions", "b": "At Risk", "c": "At Risk"},
                    {"a": 20, "b": 1, "c": 2})  # fmt: skip
    second = publish_version(warehouse, "2025-02-28", {"a": "At Risk", "b": "At Risk", "d": "New Customers"},
                             {"a": 5, "b": 1, "d": 3})  # fmt: skip

    got = rows(
        warehouse,
        "SELECT from_snapshot, to_snapshot, from_value, to_value, moved, customers, cev_from, cev_to "
        "FROM marts.segment_migration WHERE dimension = 'rfm_segment' ORDER BY from_value, to_value",
    )
    assert second.migration_rows > 0
    assert got == [
        (1, 2, "(none)", "New Customers", True, 1, 0.0, 3.0),
        (1, 2, "At Risk", "(none)", True, 1, 2.0, 0.0),
        (1, 2, "At Risk", "At Risk", False, 1, 1.0, 1.0),
        (1, 2, "Champions", "At Risk", True, 1, 20.0, 5.0),
    ]
    quadrants = rows(
        warehouse,
        "SELECT from_value, to_value, customers FROM marts.segment_migration "
        "WHERE dimension = 'quadrant' AND moved ORDER BY 1, 2",
    )
    assert ("Champions", "Misers", 1) in quadrants


def test_a_renamed_segment_moves_no_one(warehouse, monkeypatch):
    """A new owner renamed "Sleeping" to "About to Sleep" (the same cells): the migration
    counted every one of its customers as moving (a review). With the rename recorded, the
    earlier version's rows are read under the name now; a real move still counts."""
    from engagement_box.value import rfm

    publish_version(warehouse, "2025-01-31", {"a": "Sleeping", "b": "Sleeping", "c": "Champions"},
                    {"a": 1, "b": 2, "c": 30})  # fmt: skip
    monkeypatch.setattr(rfm, "SEGMENT_RENAMES", {"Sleeping": "About to Sleep"})
    publish_version(warehouse, "2025-02-28", {"a": "About to Sleep", "b": "At Risk", "c": "Champions"},
                    {"a": 1, "b": 2, "c": 30})  # fmt: skip

    got = rows(
        warehouse,
        "SELECT from_value, to_value, moved, customers FROM marts.segment_migration "
        "WHERE dimension = 'rfm_segment' ORDER BY ALL",
    )
    assert got == [
        ("About to Sleep", "About to Sleep", False, 1),
        ("About to Sleep", "At Risk", True, 1),
        ("Champions", "Champions", False, 1),
    ]


@pytest.mark.parametrize(
    ("renames", "said"),
    [
        ({"Champions": "Loyal Customers"}, "'Champions' is a segment of the map today"),
        ({"Sleeping": "Dozing"}, "'Dozing' is not a segment of the map today"),
    ],
)
def test_a_rename_map_that_cannot_be_read_one_way_is_refused(renames, said):
    from engagement_box.value import rfm

    with pytest.raises(ValueError, match=said):
        rfm.check_renames(renames, rfm.SEGMENTS)
    rfm.check_renames({"Sleeping": "About to Sleep"}, rfm.SEGMENTS)


def test_segment_migration_labels_the_unvalued_not_as_absent(warehouse):
    """A customer in a version whose completed orders all lacked an FX rate has no RFM row, and
    a NULL quadrant and CEV: the migration counted them as `(none)` (not in that version) on
    both dimensions. They are `(unvalued)`, and their CEV adds nothing; a customer absent from a
    version is still `(none)`."""
    publish_version(warehouse, "2025-01-31", {"a": "At Risk", "p": "Prospect"}, {"a": 4, "p": 1})
    write_frame(
        warehouse,
        "work",
        "customer_rfm",
        pl.DataFrame({"customer_id": ["a"], "segment": ["At Risk"]}),
    )
    write_frame(
        warehouse,
        "work",
        "engagement_value",
        pl.DataFrame(
            {
                "customer_id": ["a", "p", "u"],
                "cev": [4.0, None, None],
                "quadrant": ["Misers", None, None],
            },
            schema_overrides={"cev": pl.Float64, "quadrant": pl.String},
        ),  # fmt: skip
    )
    versions.publish(
        warehouse,
        ["customer_rfm", "engagement_value"],
        run_id="r",
        partition_key=None,
        as_of="2025-02-28",
        settings={"as_of": "2025-02-28", "data": "p and u unvalued"},
    )

    got = rows(
        warehouse,
        "SELECT dimension, from_value, to_value, customers, cev_from, cev_to "
        "FROM marts.segment_migration ORDER BY ALL",
    )
    assert got == [
        ("quadrant", "(none)", "(unvalued)", 1, 0.0, 0.0),
        ("quadrant", "Misers", "(unvalued)", 1, 1.0, 0.0),
        ("quadrant", "Misers", "Misers", 1, 4.0, 4.0),
        ("rfm_segment", "(none)", "(unvalued)", 1, 0.0, 0.0),
        ("rfm_segment", "At Risk", "At Risk", 1, 4.0, 4.0),
        ("rfm_segment", "Prospect", "(unvalued)", 1, 1.0, 0.0),
    ]


def test_an_erasure_computes_every_migration_pair_again_without_the_person(warehouse):
    """After an erasure the pairs still counted the person (Champions -> At Risk: 1 of a
    customer who is in no version any more): every pair is computed again from what is left."""
    from engagement_box.governance import erasure

    for as_of, segments in (
        ("2025-01-31", {"a": "Champions", "b": "At Risk"}),
        ("2025-02-28", {"a": "At Risk", "b": "At Risk"}),
        ("2025-03-31", {"a": "Lost", "b": "Champions"}),
    ):
        publish_version(warehouse, as_of, segments, dict.fromkeys(segments, 5.0))
    moves = (
        "SELECT from_snapshot, to_snapshot, from_value, to_value, customers "
        "FROM marts.segment_migration WHERE dimension = 'rfm_segment' ORDER BY ALL"
    )
    assert (1, 2, "Champions", "At Risk", 1) in rows(warehouse, moves)

    report = erasure.erase(warehouse, customer_id="a")
    assert report.migration_rows > 0
    assert rows(warehouse, moves) == [
        (1, 2, "At Risk", "At Risk", 1),
        (2, 3, "At Risk", "Champions", 1),
    ]
    self_join = rows(
        warehouse,
        "SELECT f.snapshot_id, t.snapshot_id, f.segment, t.segment, count(*) "
        "FROM history.customer_rfm f JOIN history.customer_rfm t "
        "ON f.customer_id = t.customer_id AND t.snapshot_id = f.snapshot_id + 1 GROUP BY ALL "
        "ORDER BY ALL",
    )
    assert self_join == rows(warehouse, moves)


def test_retention_keeps_the_newest_versions_and_always_the_current_one(warehouse):
    for month in range(1, 6):
        publish_version(warehouse, f"2025-0{month}-28", {"a": f"S{month}"}, {"a": month})
    result = versions.apply_retention(warehouse, keep_versions=2, keep_days=10_000)

    assert result.expired == [1, 2, 3]
    assert rows(warehouse, "SELECT DISTINCT snapshot_id FROM history.customer_rfm ORDER BY 1") == [
        (4,),
        (5,),
    ]
    assert rows(warehouse, "SELECT count(*) FROM marts.snapshots WHERE expired_at IS NOT NULL") == [
        (3,)
    ]
    assert rows(warehouse, "SELECT DISTINCT from_snapshot FROM marts.segment_migration") == [(4,)]
    with pytest.raises(duckdb.InvalidInputException, match="version 2 is not a retained version"):
        rows(warehouse, "SELECT * FROM marts.customer_rfm_at(2)")


def test_retention_by_age_never_drops_the_current_version(warehouse):
    publish_version(warehouse, "2025-03-31", {"a": "Champions"}, {"a": 20})
    publish_version(warehouse, "2025-01-31", {"a": "New Customers"}, {"a": 2})  # a backfill
    later = datetime.now() + timedelta(days=365)

    result = versions.apply_retention(warehouse, keep_versions=10, keep_days=30, now=later)

    assert result.expired == [2]
    assert rows(warehouse, "SELECT segment FROM marts.customer_rfm_at(1)") == [("Champions",)]


def test_a_new_column_in_a_later_version_reads_null_in_older_ones(warehouse):
    publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    write_frame(warehouse, "work", "customer_rfm",
                pl.DataFrame({"customer_id": ["a"], "segment": ["At Risk"], "r_score": [2]}))  # fmt: skip
    versions.publish(warehouse, ["customer_rfm"], run_id="r", partition_key=None,
                     as_of="2025-02-28", settings={})  # fmt: skip
    # in the documented order (r_score before segment), though the column came last
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm_at(1)") == [("a", None, "Champions")]
    assert rows(warehouse, "SELECT * FROM marts.customer_rfm_at(2)") == [("a", 2, "At Risk")]


def test_publish_without_its_work_table_changes_nothing(warehouse):
    publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    with pytest.raises(ValueError, match="work tables missing"):
        versions.publish(warehouse, ["customer_rfm", "not_there"], run_id="r",
                         partition_key=None, as_of="2025-02-28", settings={})  # fmt: skip
    assert rows(warehouse, "SELECT count(*) FROM marts.snapshots") == [(1,)]


# ----------------------------------------------------------------------------------------------
# Exactly one current version


def current_ids(con) -> list[int]:
    return [r[0] for r in rows(con, "SELECT snapshot_id FROM marts.snapshots WHERE is_current")]


def assert_one_current(con, expected: int) -> None:
    """The invariant as an analyst meets it: one current row, time travel to it works, and
    `marts.*` holds exactly that version."""
    assert current_ids(con) == [expected]
    at_current = rows(
        con,
        "SELECT * FROM marts.customer_rfm_at((SELECT snapshot_id FROM marts.snapshots "
        "WHERE is_current)) ORDER BY ALL",
    )
    assert at_current == rows(con, "SELECT * FROM marts.customer_rfm ORDER BY ALL")


def test_the_database_refuses_a_second_current_version(warehouse):
    import duckdb

    publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    publish_version(warehouse, "2025-02-28", {"a": "At Risk"}, {"a": 5})

    with pytest.raises(duckdb.ConstraintException):
        warehouse.execute("INSERT INTO marts.current_version (snapshot_id) VALUES (1)")
    with pytest.raises(duckdb.ConstraintException):
        warehouse.execute("INSERT INTO marts.current_version VALUES (false, 1)")
    assert_one_current(warehouse, 2)


def test_one_current_version_through_rerun_backfill_retention_and_erasure(warehouse):
    from engagement_box.governance import erasure

    publish_version(warehouse, "2025-03-31", {"a": "Champions", "b": "At Risk"}, {"a": 20, "b": 1})
    assert_one_current(warehouse, 1)
    # A rerun of the same month with other numbers replaces it as the current version.
    rerun = publish_version(
        warehouse, "2025-03-31", {"a": "Loyal", "b": "At Risk"}, {"a": 9, "b": 1}
    )
    assert rerun.current
    assert_one_current(warehouse, 2)
    # A backfill of an older month does not move it.
    backfill = publish_version(warehouse, "2025-01-31", {"a": "New Customers"}, {"a": 2})
    assert not backfill.current
    assert_one_current(warehouse, 2)
    # Retention keeps the newest publish (the backfill) and the current version.
    result = versions.apply_retention(warehouse, keep_versions=1, keep_days=10_000)
    assert result.expired == [1]
    assert_one_current(warehouse, 2)
    # Erasure removes the person from every version; the current one is still the current one.
    report = erasure.erase(warehouse, customer_id="a")
    assert report.found
    assert_one_current(warehouse, 2)
    assert rows(warehouse, "SELECT customer_id FROM marts.customer_rfm") == [("b",)]
    # Another month after all that.
    publish_version(warehouse, "2025-04-30", {"b": "Hibernating"}, {"b": 1})
    assert_one_current(warehouse, 4)


def test_a_warehouse_from_before_the_log_is_adopted_with_one_current_version(warehouse):
    """The old `marts.snapshots` table, with the two current rows a second run left."""
    publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    publish_version(warehouse, "2025-02-28", {"a": "At Risk"}, {"a": 5})
    warehouse.execute("DROP VIEW marts.snapshots")
    warehouse.execute(
        "CREATE TABLE marts.snapshots AS SELECT * EXCLUDE (inputs_fingerprint), "
        "true AS is_current FROM marts.snapshot_log"
    )
    warehouse.execute("DROP TABLE marts.current_version")
    warehouse.execute("DROP TABLE marts.snapshot_log")
    warehouse.execute("DELETE FROM marts.segment_migration")

    assert versions.current_version(warehouse) is None
    versions.ensure_version_tables(warehouse)

    assert_one_current(warehouse, 2)
    assert rows(
        warehouse, "SELECT DISTINCT from_snapshot, to_snapshot FROM marts.segment_migration"
    ) == [(1, 2)]
    assert publish_version(warehouse, "2025-03-31", {"a": "Lost"}, {"a": 0}).snapshot_id == 3


# ----------------------------------------------------------------------------------------------
# Migration along the chain


def expected_moves(con, from_snapshot: int, to_snapshot: int) -> dict:
    """The self-join of history an analyst would write, in Python: (dimension, from, to) ->
    (customers, cev_from, cev_to)."""

    def version(snapshot_id: int):
        rfm = dict(rows(con, f"SELECT customer_id, segment FROM history.customer_rfm WHERE snapshot_id = {snapshot_id}"))  # fmt: skip
        value = {c: (q, v) for c, q, v in rows(con, f"SELECT customer_id, quadrant, cev FROM history.engagement_value WHERE snapshot_id = {snapshot_id}")}  # fmt: skip
        return rfm, value

    rfm_f, value_f = version(from_snapshot)
    rfm_t, value_t = version(to_snapshot)
    moves: dict = {}
    for dimension, before, after in (
        ("rfm_segment", rfm_f, rfm_t),
        ("quadrant", {c: q for c, (q, _) in value_f.items()}, {c: q for c, (q, _) in value_t.items()}),
    ):  # fmt: skip
        for customer in set(before) | set(after):
            key = (dimension, before.get(customer, "(none)"), after.get(customer, "(none)"))
            n, cev_from, cev_to = moves.get(key, (0, 0.0, 0.0))
            moves[key] = (
                n + 1,
                cev_from + value_f.get(customer, (None, 0.0))[1],
                cev_to + value_t.get(customer, (None, 0.0))[1],
            )
    return moves


def chain_in_python(con) -> list[int]:
    """Retained versions by as-of; for one as-of, the newest publish stands."""
    live = rows(con, "SELECT snapshot_id, as_of FROM marts.snapshots WHERE expired_at IS NULL")
    newest: dict = {}
    for snapshot_id, as_of in live:
        newest[as_of] = max(snapshot_id, newest.get(as_of, 0))
    return [newest[a] for a in sorted(newest)]


def assert_migration_is_every_consecutive_pair(con) -> list[tuple[int, int]]:
    chain = chain_in_python(con)
    pairs = list(zip(chain, chain[1:], strict=False))
    stored = rows(
        con, "SELECT DISTINCT from_snapshot, to_snapshot FROM marts.segment_migration ORDER BY ALL"
    )
    assert sorted(stored) == sorted(pairs)
    for from_snapshot, to_snapshot in pairs:
        got = {
            (d, f, t): (n, pytest.approx(cf), pytest.approx(ct))
            for d, f, t, n, cf, ct in rows(
                con,
                "SELECT dimension, from_value, to_value, customers, cev_from, cev_to "
                f"FROM marts.segment_migration WHERE from_snapshot = {from_snapshot} "
                f"AND to_snapshot = {to_snapshot}",
            )
        }
        assert got == expected_moves(con, from_snapshot, to_snapshot), (from_snapshot, to_snapshot)
    return pairs


MONTHS = {
    "2025-01-31": ({"a": "New Customers", "b": "New Customers"}, {"a": 1, "b": 2}),
    "2025-02-28": ({"a": "Loyal", "b": "New Customers", "c": "New Customers"}, {"a": 12, "b": 2, "c": 3}),
    "2025-03-31": ({"a": "Champions", "b": "At Risk", "c": "Loyal"}, {"a": 30, "b": 1, "c": 11}),
    "2025-04-30": ({"a": "At Risk", "b": "Lost", "c": "Champions"}, {"a": 4, "b": 0, "c": 25}),
    "2025-05-31": ({"a": "Lost", "c": "Champions", "d": "New Customers"}, {"a": 0, "c": 40, "d": 5}),
}  # fmt: skip


def test_migration_holds_every_consecutive_pair_when_months_arrive_out_of_order(warehouse):
    for as_of in ("2025-03-31", "2025-05-31", "2025-01-31", "2025-04-30"):
        publish_version(warehouse, as_of, *MONTHS[as_of])
        assert_migration_is_every_consecutive_pair(warehouse)
    # Backfill between two versions: their pair is replaced by two.
    publish_version(warehouse, "2025-02-28", *MONTHS["2025-02-28"])
    assert assert_migration_is_every_consecutive_pair(warehouse) == [(3, 5), (5, 1), (1, 4), (4, 2)]
    # A rerun of March with other numbers replaces March in the chain.
    publish_version(
        warehouse, "2025-03-31", {"a": "Loyal", "b": "Lost", "c": "Loyal"}, {"a": 9, "b": 0, "c": 8}
    )
    assert assert_migration_is_every_consecutive_pair(warehouse) == [(3, 5), (5, 6), (6, 4), (4, 2)]
    # The current version is May's; the move into it is there.
    assert current_ids(warehouse) == [2]
    # Retention expires versions; the pairs around the gaps are computed.
    # Retention expires versions (April's among them); the pair around the gap is computed.
    result = versions.apply_retention(warehouse, keep_versions=2, keep_days=10_000)
    assert result.expired == [1, 3, 4] and result.migration_rows > 0
    assert assert_migration_is_every_consecutive_pair(warehouse) == [(5, 6), (6, 2)]
    versions.apply_retention(warehouse, keep_versions=1, keep_days=10_000)
    assert assert_migration_is_every_consecutive_pair(warehouse) == [(6, 2)]


# ----------------------------------------------------------------------------------------------
# No duplicate versions


def test_a_publish_with_the_inputs_of_an_existing_version_publishes_nothing(warehouse):
    first = publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    again = publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})

    assert first.published and not again.published
    assert (again.snapshot_id, again.current) == (1, True)
    assert again.inputs_fingerprint == first.inputs_fingerprint
    assert again.rows == first.rows
    assert rows(warehouse, "SELECT count(*) FROM marts.snapshots") == [(1,)]
    assert rows(warehouse, "SELECT count(*) FROM history.customer_rfm") == [(1,)]


def test_the_fingerprint_changes_with_every_input(warehouse, monkeypatch):
    def fingerprint(as_of="2025-01-31", **settings):
        return versions.inputs_fingerprint(
            warehouse, as_of=as_of, settings={"penalizer": "0.0", **settings}
        )

    base = fingerprint()
    assert fingerprint(partition_key="2025-07-01") == base  # names the run, not the numbers
    assert fingerprint(as_of="2025-02-28") != base
    assert fingerprint(penalizer="0.1") != base

    warehouse.execute("CREATE SCHEMA staging")
    warehouse.execute(
        "CREATE TABLE staging.ingested_files "
        "(source VARCHAR, source_file VARCHAR, sha256 VARCHAR, rows_staged BIGINT)"
    )
    # A file that stages nothing (header only, or every row quarantined) changes no mart.
    warehouse.execute("INSERT INTO staging.ingested_files VALUES ('orders', 'e.csv', 'ee', 0)")
    assert fingerprint() == base
    warehouse.execute("INSERT INTO staging.ingested_files VALUES ('orders', 'o.csv', 'aa', 3)")
    with_file = fingerprint()
    assert with_file != base
    warehouse.execute("UPDATE staging.ingested_files SET sha256 = 'bb' WHERE sha256 = 'aa'")
    assert fingerprint() not in (base, with_file)

    changed_data = fingerprint()
    warehouse.execute("CREATE TABLE staging.erasure_log (request_id VARCHAR, rows_deleted JSON)")
    warehouse.execute("INSERT INTO staging.erasure_log VALUES ('r0', '{}')")  # matched no row
    assert fingerprint() == changed_data
    warehouse.execute("""INSERT INTO staging.erasure_log VALUES ('r1', '{"work.x": 2}')""")
    assert fingerprint() != changed_data

    after_erasure = fingerprint()
    monkeypatch.setattr(versions, "model_code_version", lambda: "another code version")
    assert fingerprint() != after_erasure


def test_the_model_code_version_is_a_hash_of_the_code():
    code = versions.model_code_version()
    assert len(code) == 16 and code == versions.model_code_version()


def test_unchanged_inputs_of_a_replaced_version_publish_again(warehouse):
    """Only the version standing for its as-of is reused: after a rerun replaced it, going back
    to the first inputs is a new version again (the newest publish of an as-of stands)."""
    publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    other = versions.inputs_fingerprint(warehouse, as_of="2025-01-31", settings={"x": "1"})
    write_frame(warehouse, "work", "customer_rfm", pl.DataFrame({"customer_id": ["a"], "segment": ["Lost"]}))  # fmt: skip
    versions.publish(warehouse, ["customer_rfm", "engagement_value"], run_id="r",
                     partition_key=None, as_of="2025-01-31", settings={"x": "1"})  # fmt: skip
    assert versions.version_with_inputs(warehouse, other) == 2

    back = publish_version(warehouse, "2025-01-31", {"a": "Champions"}, {"a": 20})
    assert back.published and back.snapshot_id == 3
    assert_one_current(warehouse, 3)


def test_a_version_of_one_as_ofs_work_rows_links_them_and_keeps_them_through_a_rerun(warehouse):
    """The pipeline's publish (`work_as_of`): the version's rows are the work rows of its as-of,
    linked, not copied. A rerun of that as-of copies them to `history_rows` before replacing
    them, so the version never changes; retention deletes the copy and the link."""
    as_of = date(2025, 1, 31)

    def work_rows(segments: dict[str, str]) -> None:
        frame = pl.DataFrame({"customer_id": list(segments), "segment": list(segments.values())})
        partitioned.write_partition(warehouse, "work", "customer_rfm", frame, as_of)

    def publish(n: int) -> versions.Snapshot:
        return versions.publish(
            warehouse, ["customer_rfm"], run_id="r", partition_key=None, as_of=str(as_of),
            settings={"n": n}, work_as_of=as_of,
        )  # fmt: skip

    def at(snapshot_id: int) -> list[tuple]:
        return rows(
            warehouse,
            f"SELECT customer_id, segment FROM marts.customer_rfm_at({snapshot_id}) ORDER BY 1",
        )

    def copied() -> list[tuple]:
        return rows(
            warehouse, "SELECT snapshot_id, count(*) FROM history_rows.customer_rfm GROUP BY 1"
        )

    partitioned.write_partition(  # another as-of's rows: never part of the version
        warehouse, "work", "customer_rfm",
        pl.DataFrame({"customer_id": ["z"], "segment": ["Lost"]}), date(2024, 12, 31),
    )  # fmt: skip
    work_rows({"a": "Champions", "b": "At Risk"})
    first = publish(1)
    assert copied() == []  # linked, not copied
    assert at(first.snapshot_id) == [("a", "Champions"), ("b", "At Risk")]
    assert first.rows == {"customer_rfm": 2}

    work_rows({"a": "Lost"})  # the as-of again (a rerun): the first version keeps its rows
    assert copied() == [(first.snapshot_id, 2)]
    assert at(first.snapshot_id) == [("a", "Champions"), ("b", "At Risk")]
    second = publish(2)
    assert at(second.snapshot_id) == [("a", "Lost")]
    assert rows(warehouse, "SELECT customer_id, segment FROM marts.customer_rfm") == [("a", "Lost")]
    assert rows(warehouse, "SELECT snapshot_id, count(*) FROM history.customer_rfm GROUP BY 1 ORDER BY 1") == [
        (first.snapshot_id, 2),
        (second.snapshot_id, 1),
    ]  # fmt: skip

    expired = versions.apply_retention(warehouse, keep_versions=1, keep_days=10_000)
    assert expired.expired == [first.snapshot_id] and expired.rows_deleted == 2
    assert copied() == []
    assert at(second.snapshot_id) == [("a", "Lost")]
    expired = versions.apply_retention(warehouse, keep_versions=1, keep_days=10_000)
    assert expired.expired == []


def test_history_tables_are_the_connections_own(tmp_path):
    """A database attached beside the working one (the published file while it is built) has
    its own `history` schema: its tables are not the working database's versions."""
    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    con.execute("CREATE SCHEMA history")
    con.execute("CREATE TABLE history.customer (snapshot_id BIGINT)")
    con.execute(f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
    con.execute("CREATE SCHEMA other.history")
    con.execute("CREATE TABLE other.history.engagement_value (snapshot_id BIGINT)")
    assert versions.history_tables(con) == ["customer"]


def test_catalog_questions_answer_for_the_connections_own_tables_and_views(tmp_path):
    """`sql.table_exists` is true of a base table of the connection's own database only (not
    a view, a temporary table, another attached database's table); `relation_exists` also of a
    view. A name that is missing leaves an open transaction usable, and one holding a double
    quote is found too."""
    from engagement_box import sql

    con = duckdb.connect(str(tmp_path / "working.duckdb"))
    con.execute("CREATE SCHEMA work")
    con.execute("CREATE TABLE work.customer (customer_id VARCHAR)")
    con.execute("CREATE VIEW work.customer_view AS SELECT * FROM work.customer")
    con.execute('CREATE TABLE work."odd ""name""" (x INTEGER)')
    con.execute("CREATE TEMP TABLE temporary_only (x INTEGER)")
    con.execute(f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
    con.execute("CREATE SCHEMA other.work")
    con.execute("CREATE TABLE other.work.elsewhere (x INTEGER)")

    assert sql.table_exists(con, "work", "customer")
    assert sql.table_exists(con, "work", 'odd "name"')
    assert not sql.table_exists(con, "work", "customer_view")
    assert sql.relation_exists(con, "work", "customer_view")
    assert not sql.table_exists(con, "main", "temporary_only")
    assert not sql.table_exists(con, "work", "elsewhere")
    assert not sql.relation_exists(con, "work", "elsewhere")
    assert not sql.table_exists(con, "nowhere", "customer")

    with sql.transaction(con):
        con.execute("CREATE TABLE work.made_now (x INTEGER)")
        assert sql.table_exists(con, "work", "made_now")  # seen inside its transaction
        assert not sql.table_exists(con, "work", "missing")
        con.execute("INSERT INTO work.made_now VALUES (1)")  # the transaction goes on
    assert con.execute("SELECT count(*) FROM work.made_now").fetchone() == (1,)


def test_a_version_is_published_at_utc_on_a_host_outside_utc(warehouse, monkeypatch):
    """On a host in New York a version's published_at was the host's local time while the
    files' ingested_at and the quarantine's times were UTC: the version looked published five
    hours before its files were taken in (a review of time zones), and retention's age compared
    local times. Every stored time of the pipeline's own is UTC."""
    import time

    from engagement_box.clock import utc_now

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        before = utc_now()
        publish_version(warehouse, "2026-06-30", {"a": "Champions"}, {"a": 12.0})
        after = utc_now()
        ((published,),) = rows(warehouse, "SELECT published_at FROM marts.snapshots")
        assert before <= published <= after
        assert abs((utc_now() - datetime.now()).total_seconds()) > 3600  # the host is not UTC
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_freshness_of_a_version_capped_at_its_days_end_says_a_later_day_covers_the_rest():
    """An order dated after the run's day (an export ahead of the shop's clock) left the version
    'one day before the last completed order staged: run its month', the month just run,
    whose rerun the same day said the same (a review of calendar edges)."""
    capped = versions.Freshness(1, date(2026, 12, 7), date(2026, 12, 8), 0, date(2026, 12, 7))
    assert capped.describe() == (
        "the current version 1 is as of 2026-12-07, the day it was published: the last "
        "completed order staged is dated 2026-12-08, after that day (an as-of never passes the "
        "run's day; ENGAGEMENT_TIME_ZONE sets the shop's calendar): a run on that day or later "
        "covers it"
    )
    behind = versions.Freshness(1, date(2026, 6, 29), date(2026, 6, 30), 0, date(2026, 7, 1))
    assert behind.describe().endswith(
        "1 day(s) before the last completed order staged (2026-06-30): run its month "
        "(engagement-box run --month 2026-06)"
    )
