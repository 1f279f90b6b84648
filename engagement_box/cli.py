"""`engagement-box`: run the pipeline on the configured exports without starting a server.

    engagement-box run        materialize the whole graph once (ENGAGEMENT_DATA_DIR -> warehouse)
    engagement-box generate   write a synthetic retailer's exports (see engagement_box.generator)

Runs are recorded in the Dagster instance at DAGSTER_HOME (default: `.dagster/` in the checkout),
so `dagster dev` shows them afterwards with their lineage, metadata and checks.
"""

import argparse
import fcntl
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from engagement_box import settings

# After SIGTERM or SIGINT a run gets this long to stop by itself, then the process exits anyway.
# Leaving mid-step is safe: every write is one transaction, so the last good version stays.
STOP_GRACE_SECONDS = 6.0


def _instance_home() -> str:
    home = os.environ.get("DAGSTER_HOME") or str(settings.REPO_ROOT / ".dagster")
    os.environ["DAGSTER_HOME"] = home
    os.makedirs(home, exist_ok=True)
    return home


@contextmanager
def _instance_lock(home: str):
    """Held while the Dagster instance opens: two runs starting together on a new DAGSTER_HOME
    would otherwise both create its storage, and one crashed ("table ... already exists")."""
    fd = os.open(os.path.join(home, ".engagement-box.instance.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def open_instance(home: str):
    """The Dagster instance at `home`, its storage created (once) under a lock."""
    import dagster as dg

    with _instance_lock(home):
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)  # creates (or upgrades) the run and event storage now
    return instance


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def _stop_on_signal(on_timeout: Callable[[int], None]):
    """On SIGTERM or SIGINT, let the run stop by itself for STOP_GRACE_SECONDS, then call
    `on_timeout(signum)` and exit. Dagster only looks at the signal between its own steps, and
    not at all while a step waits, so a thread watches the signal instead of the main loop."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    # A Python handler must be set for the wake-up byte to be written; Dagster replaces it with
    # its own while the run executes, and the byte is written for either.
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)}

    def watch() -> None:
        got = reader.recv(1)
        if not got:  # the run ended: no signal came
            return
        name = signal.Signals(got[0]).name
        print(f"{name} received: stopping the run", file=sys.stderr, flush=True)
        # Plain sleeps, not timed lock waits: those hang under a faked clock (libfaketime).
        time.sleep(STOP_GRACE_SECONDS)
        print(
            f"the run did not stop within {STOP_GRACE_SECONDS:.0f} s of {name}; leaving it now "
            "(the last good version stays current)",
            file=sys.stderr,
            flush=True,
        )
        reporter = threading.Thread(target=on_timeout, args=(got[0],), daemon=True)
        reporter.start()
        deadline = time.monotonic() + 2.0
        while reporter.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(128 + got[0])

    watcher = threading.Thread(target=watch, name="stop-on-signal", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        writer.close()  # wakes the watcher, which ends unless a signal already came
        watcher.join(0.5)
        reader.close()


def root_cause(result) -> str | None:
    """The first failure of a run, as the user-facing message of the exception that caused it
    (not Dagster's "Execution of run ... failed")."""
    for event in result.all_events:
        if not event.is_failure and event.event_type_value not in (
            "RESOURCE_INIT_FAILURE",
            "ENGINE_EVENT",
        ):
            continue
        error = getattr(event.event_specific_data, "error", None)
        if error is None:
            continue
        while error.cause is not None:
            error = error.cause
        message = error.message.strip()
        prefix, _, rest = message.partition(": ")
        if rest and prefix.rsplit(".", 1)[-1] == error.cls_name:
            message = rest
        where = f"{event.step_key}: " if event.step_key else ""
        return f"{where}{message.splitlines()[0] if message else error.cls_name}"
    return None


def _exports_problem() -> str | None:
    from pipelines.resources import missing_export_folders, missing_exports_message

    data_dir = settings.data_dir()
    missing = missing_export_folders(data_dir)
    return missing_exports_message(data_dir, missing) if missing else None


def run(args: argparse.Namespace) -> int:
    from dagster._core.utils import make_new_run_id

    home = _instance_home()
    from pipelines.definitions import defs
    from pipelines.partitions import MonthOutOfRange, current_partition_key, partition_key_for_month
    from pipelines.resources import process_tags

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
    problem = _exports_problem()
    if problem:
        print(f"FAILED before any step: {problem}", file=sys.stderr)
        return 2
    run_id = make_new_run_id()
    with open_instance(home) as instance:

        def fail_run(signum: int) -> None:
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                instance.report_run_failed(
                    run, message=f"stopped by {signal.Signals(signum).name} before it finished"
                )

        with _stop_on_signal(fail_run):
            result = job.execute_in_process(
                instance=instance,
                partition_key=partition,
                raise_on_error=False,
                run_id=run_id,
                tags=process_tags(),
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
    for check in result.get_asset_check_evaluations():
        if check.check_name == "orders_left_out_within_limit":  # says how many, and why
            print(f"orders left out of the value models: {check.description}")
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    if not result.success or failed:
        cause = root_cause(result)
        if cause is None and failed:
            cause = ", ".join(
                f"check {c.check_name} on {c.asset_key.to_user_string()}" for c in failed
            )
            cause = f"{cause} failed; nothing was published"
        print(f"FAILED {cause or 'the run failed; see the Dagster log above'}", file=sys.stderr)
        return 1
    print(f"run {result.run_id} succeeded")
    return 0


def erase(args: argparse.Namespace) -> int:
    """Erase one person from every table, every retained version and the audience files."""
    from engagement_box.governance import erasure
    from pipelines.resources import (
        EngagementConfig,
        adopt_single_file,
        run_lock,
        warehouse_resource,
    )

    warehouse = warehouse_resource()
    # Under the run lock: a run publishing at the same time could otherwise put back a file it
    # built before the erasure.
    with run_lock(warehouse.path):
        adopt_single_file(warehouse.layout)
        with warehouse.get_connection() as con:
            report = erasure.erase(
                con,
                customer_id=args.customer_id,
                email=args.email,
                audience_dir=EngagementConfig().audience_path,
                published=warehouse.layout,
            )
    print(f"request {report.request_id} at {report.requested_at}: person found: {report.found}")
    for table, rows in sorted(report.rows_deleted.items()):
        print(f"  {table:40} {rows:>8} rows deleted")
    for path, rows in sorted(report.audience_rows_removed.items()):
        print(f"  {path:40} {rows:>8} audience rows removed")
    if report.published_file:
        print(f"  published file rebuilt without the person: {warehouse.path}")
    if report.history_files_rewritten:
        print(
            f"  {len(report.history_files_rewritten)} history Parquet files rewritten without "
            "the person"
        )
    if args.compact:
        with run_lock(warehouse.path):
            compacted = erasure.compact(warehouse.working_path)
        print(f"working database rewritten without free blocks: {compacted}")
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
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("stopped before the run started; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
