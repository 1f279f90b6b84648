"""`engagement-box`: run the pipeline on the configured exports without starting a server.

    engagement-box run        materialize the whole graph once (ENGAGEMENT_DATA_DIR -> warehouse)
    engagement-box generate   write a synthetic retailer's exports (see engagement_box.generator)

Runs are recorded in the Dagster instance at DAGSTER_HOME (default: `.dagster/` in the checkout),
so `dagster dev` shows them afterwards with their lineage, metadata and checks.
"""

import argparse
import os
import sys

from engagement_box import settings


def _instance_home() -> str:
    home = os.environ.get("DAGSTER_HOME") or str(settings.REPO_ROOT / ".dagster")
    os.environ["DAGSTER_HOME"] = home
    os.makedirs(home, exist_ok=True)
    return home


def run(args: argparse.Namespace) -> int:
    import dagster as dg

    home = _instance_home()
    from pipelines.definitions import defs
    from pipelines.partitions import MonthOutOfRange, current_partition_key, partition_key_for_month

    job = defs.resolve_job_def("engagement_pipeline")
    try:
        partition = partition_key_for_month(args.month) if args.month else current_partition_key()
    except MonthOutOfRange as error:
        print(f"engagement-box run: {error}", file=sys.stderr)
        return 2
    print(f"exports:   {settings.data_dir()}")
    print(f"warehouse: {settings.warehouse_path()}")
    print(f"dagster:   {home}")
    print(f"as-of month (partition): {partition}")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False
        )
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        rows = meta.get("dagster/row_count")
        table = meta.get("dagster/table_name")
        print(
            f"  {event.asset_key.to_user_string():32} {table.value if table else '':28} "
            f"{rows.value if rows else '':>10} rows"
        )
    for check in result.get_asset_check_evaluations():
        status = "passed" if check.passed else "FAILED"
        print(f"  check {check.asset_key.to_user_string()}:{check.check_name} {status}")
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    if not result.success or failed:
        for event in result.all_events:
            if event.is_failure:
                print(f"FAILED {event.step_key}: {event.message}", file=sys.stderr)
        return 1
    print(f"run {result.run_id} succeeded")
    return 0


def erase(args: argparse.Namespace) -> int:
    """Erase one person from every table, every retained version and the audience files."""
    from engagement_box.governance import erasure
    from pipelines.resources import EngagementConfig, warehouse_resource

    warehouse = warehouse_resource()
    with warehouse.get_connection() as con:
        report = erasure.erase(
            con,
            customer_id=args.customer_id,
            email=args.email,
            audience_dir=EngagementConfig().audience_path,
        )
    print(f"request {report.request_id} at {report.requested_at}: person found: {report.found}")
    for table, rows in sorted(report.rows_deleted.items()):
        print(f"  {table:40} {rows:>8} rows deleted")
    for path, rows in sorted(report.audience_rows_removed.items()):
        print(f"  {path:40} {rows:>8} audience rows removed")
    if args.compact:
        compacted = erasure.compact(warehouse.path)
        print(f"warehouse rewritten without free blocks: {compacted}")
    return 0


def generate(args: argparse.Namespace) -> int:
    from engagement_box import generator

    return generator.main(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engagement-box", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize the whole graph once")
    run_parser.add_argument(
        "--month", help="as-of month YYYY-MM (default: the current month, capped at the data)"
    )
    run_parser.set_defaults(func=run)
    erase_parser = sub.add_parser(
        "erase", help="erase a person (GDPR/CCPA) from every table, version and audience"
    )
    who = erase_parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer-id")
    who.add_argument("--email")
    erase_parser.add_argument(
        "--compact",
        action="store_true",
        help="also rewrite the warehouse file so freed blocks holding old data are gone",
    )
    erase_parser.set_defaults(func=erase)
    gen = sub.add_parser(
        "generate",
        help="write a synthetic retailer's exports (seeded, deterministic)",
        description="Generate one retailer's raw exports (seeded, deterministic).",
    )
    from engagement_box import generator

    generator.add_arguments(gen)
    gen.set_defaults(func=generate)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
