"""`factory`: submit topic files, run a batch without the UI, see where topics stand, open the UI.

factory submit FILE --channel C      copy FILE into the inbox; the sensor picks it up
factory run FILE --channel C [--json] materialize the batch here and now, one run per topic
factory status [--json]              every topic's status
factory estimate FILE --channel C    what a batch will cost before it runs
factory voices ...                   the voice studio: check samples, clone, test, set, delete
factory characters ...               the character studio: add, variations, list, delete
factory accounts ...                 platform accounts: connect, list, disconnect, rotate-key
factory users ...                    API users: add, key, keys, revoke, plan, usage
factory publish KEY... [--now]       post finished topics (at their slot, or at once)
factory analytics                    pull metrics now and write each channel's report
factory media prune --older-than D   remove old topics' media (never a live post's)
factory ui [--port P]                Dagster webserver and daemon on 127.0.0.1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from factory_cli import accounts, characters, estimate, media, publishing, users, voices
from factory_cli.environment import ProfileError, prepare_environment

TOPIC_FILE_KINDS = ".csv, .tsv, .txt, .yaml or .json"
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_submit(args: argparse.Namespace) -> int:
    from factory_core.slugs import InvalidChannelError, channel_slug
    from factory_resources.store import MediaStore

    source = Path(args.file)
    if not source.is_file():
        _err(f"error: {source} is not a file; give the path of a {TOPIC_FILE_KINDS} topic file")
        return 2
    try:
        inbox = MediaStore().inbox_dir(channel_slug(args.channel))
    except InvalidChannelError as exc:
        _err(f"error: {exc}")
        return 2
    target = inbox / source.name
    if target.exists():
        target = inbox / f"{source.stem}-{time.strftime('%Y%m%d-%H%M%S')}{source.suffix}"
    shutil.copyfile(source, target)
    print(f"submitted {source.name} to {target}; the topic_batch_sensor picks it up (make ui)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import dagster as dg

    from factory_assets.definitions import defs
    from factory_assets.partitions import topics
    from factory_assets.status import failure_reason, topic_status
    from factory_core.batch_page import batch_page_name
    from factory_core.run_tags import new_batch_id, topic_run_tags
    from factory_core.slugs import InvalidChannelError, channel_slug
    from factory_core.topics_file import TopicFileError
    from factory_resources.store import MediaStore
    from factory_sensors.intake import read_batch, record_batch

    source = Path(args.file)
    if not source.is_file():
        _err(f"error: {source} is not a file; give the path of a {TOPIC_FILE_KINDS} topic file")
        return 2
    try:
        channel = channel_slug(args.channel)
    except InvalidChannelError as exc:
        _err(f"error: {exc}")
        return 2
    store = MediaStore()
    instance = dg.DagsterInstance.get()
    try:
        batch = read_batch(source, channel, store, instance)
    except TopicFileError as exc:
        _err(f"error: {exc}")
        return 2
    if batch.encoding not in ("utf-8", "utf-16"):
        _err(f"note: {source.name} is not UTF-8; read it as {batch.encoding}")
    instance.add_dynamic_partitions(topics.name, [r.key for r in batch.accepted])

    job = defs.resolve_job_def("produce_topic")
    owner = store.channel_profile(channel).owner
    batch_id = new_batch_id(channel, source.name)
    record_batch(store, batch, batch_id, owner, source="cli")
    tags = topic_run_tags(owner, channel, batch_id)
    rows: list[dict[str, object]] = []
    started = time.perf_counter()
    for verdict in batch.verdicts:
        if verdict.status == "rejected" or verdict.key is None:
            rows.append({"topic": verdict.topic, "key": None, "status": "rejected",
                         "video": None, "duration_s": None, "error": verdict.reason})  # fmt: skip
            continue
        key = verdict.key
        if verdict.status == "duplicate" and any(r["key"] == key for r in rows):
            continue  # the same topic twice in one file: made once
        current = topic_status(instance, store, key)
        if current.status == "done":
            rows.append({"topic": verdict.topic, "key": key, "status": "cached",
                         "video": current.video, "duration_s": current.duration_s,
                         "error": None})  # fmt: skip
            continue
        _err(f"[{len(rows) + 1}/{len(batch.verdicts)}] {key} ...")
        t0 = time.perf_counter()
        run_config = {**QUIET_LOGS}
        if args.renderer:
            run_config["ops"] = {"video": {"config": {"renderer": args.renderer}}}
        result = job.execute_in_process(
            partition_key=key, instance=instance, raise_on_error=False, run_config=run_config,
            tags=tags,
        )  # fmt: skip
        after = topic_status(instance, store, key)
        ok = result.success and after.status == "done"
        error = None if ok else failure_reason(instance, result.run_id)
        rows.append({"topic": verdict.topic, "key": key, "status": "done" if ok else "failed",
                     "video": after.video if ok else None, "duration_s": after.duration_s,
                     "error": error})  # fmt: skip
        _err(f"    {'done' if ok else 'FAILED'} in {time.perf_counter() - t0:.1f}s"
             + (f": {error}" if error else ""))  # fmt: skip

    defs.resolve_job_def("refresh_batch_report").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET_LOGS
    )
    failed = [r for r in rows if r["status"] in ("failed", "rejected")]
    page = store.root / "reports" / "batches" / batch_page_name(batch_id)
    summary = {
        "channel": channel,
        "file": source.name,
        "batch": batch_id,
        "report_html": str(page),
        "topics": rows,
        "made": sum(r["status"] == "done" for r in rows),
        "cached": sum(r["status"] == "cached" for r in rows),
        "failed": len(failed),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        _print_table(rows)
        print(
            f"batch: {len(rows)} topics, {summary['made']} made, {summary['cached']} cached, "
            f"{len(failed)} failed or rejected, {summary['seconds']}s; report: "
            f"{store.root / 'reports' / 'report.md'}; page: {page}"
        )
    return 1 if failed else 0


def _print_table(rows: list[dict[str, object]]) -> None:
    for row in rows:
        duration = f"{row['duration_s']:.1f}s" if row.get("duration_s") else "-"
        where = row["video"] or row["error"] or ""
        topic = str(row["topic"])[:48]
        print(f"{row['status']:<9} {duration:>7}  {topic:<48}  {where}")


def cmd_status(args: argparse.Namespace) -> int:
    import dagster as dg

    from factory_assets.status import all_statuses
    from factory_resources.store import MediaStore

    statuses = all_statuses(dg.DagsterInstance.get(), MediaStore())
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], ensure_ascii=False, indent=2))
    else:
        _print_table([s.as_dict() for s in statuses])
        print(f"status: {len(statuses)} topics, {sum(s.status == 'done' for s in statuses)} done")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from factory_resources.store import REPO_ROOT

    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(REPO_ROOT / "workspace.yaml"),
               "-h", "127.0.0.1", "-p", str(args.port)]  # fmt: skip
    print(f"Dagster UI on http://127.0.0.1:{args.port} (instance: {os.environ['DAGSTER_HOME']})")
    return subprocess.call(command, cwd=REPO_ROOT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="factory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    submit = sub.add_parser("submit", help="put a topic file into the inbox")
    submit.add_argument("file")
    submit.add_argument("--channel", required=True)
    submit.set_defaults(func=cmd_submit)
    run = sub.add_parser("run", help="make every topic in a file now, without the UI")
    run.add_argument("file")
    run.add_argument("--channel", required=True)
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument(
        "--renderer", choices=["ffmpeg", "moviepy"], help="override the channel's render backend"
    )
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="where every topic stands")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    estimate.register(sub)
    voices.register(sub)
    characters.register(sub)
    accounts.register(sub)
    users.register(sub)
    publishing.register(sub)
    media.register(sub)
    ui = sub.add_parser("ui", help="Dagster webserver and daemon on 127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        prepare_environment()
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
