"""The benchmark and stress scripts measure and check what they say (a review ran each one)."""

import shutil

import duckdb

from engagement_box.governance.readers import default_working
from tests import benchmark_scripts
from tests.pipeline_runs import copy_run


def test_the_kill_stress_checks_the_published_versions(december_run, tmp_path):
    """`stress_kills.py` looked for `marts.snapshots` among the tables of the published file,
    where it is a view: every kill reported "0 versions, current whole", checking nothing. It
    counts the retained versions and refuses a version whose rows are not those logged."""
    stress = benchmark_scripts.load("stress_kills")
    copy = copy_run(december_run, tmp_path)
    assert stress.versions(copy.database) == 1
    # a version file that lost a row (as a kill halfway through writing it could leave it)
    from engagement_box.governance import readers

    layout = readers.Layout(copy.database, default_working(copy.database))
    rfm = layout.history_file("customer_rfm", 1)
    short = tmp_path / "short.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{rfm}') LIMIT "
            f"(SELECT count(*) - 1 FROM read_parquet('{rfm}'))) TO '{short}' (FORMAT parquet)"
        )
    shutil.move(short, rfm)
    try:
        stress.versions(copy.database)
    except AssertionError as refused:
        assert "customer_rfm" in str(refused)
    else:
        raise AssertionError("a version whose rows are not those logged was taken as whole")


def test_the_identity_bench_runs_its_merge_statements(december_run, tmp_path):
    """`bench_identity.py` crashed on every run: its merge statements read the placeholder
    limit, which it did not give them."""
    bench = benchmark_scripts.load("bench_identity")
    working = tmp_path / "w.duckdb"
    shutil.copy(default_working(december_run.database), working)
    from engagement_box.identity.links import build_identity_links

    with duckdb.connect(str(working)) as con:
        build_identity_links(con)  # as the bench does: its merge statements read what it made
        assert bench.merge_seconds(con) >= 0
