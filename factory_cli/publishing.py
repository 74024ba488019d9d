"""`factory publish` and `factory analytics`: the publishing and analytics jobs from a shell.

factory publish KEY... [--now]   post finished topics (at their slot, or at once with --now)
factory analytics                pull metrics now and write each channel's report
"""

from __future__ import annotations

import argparse
import sys

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def cmd_publish(args: argparse.Namespace) -> int:
    import dagster as dg

    from factory_assets.definitions import defs
    from factory_assets.partitions import topics
    from factory_assets.publications import PUBLISH_TAG
    from factory_assets.status import failure_reason

    instance = dg.DagsterInstance.get()
    known = set(instance.get_dynamic_partitions(topics.name))
    job = defs.resolve_job_def("publish_topic")
    failed = 0
    for key in args.keys:
        if key not in known:
            print(f"{key}: no such topic; `factory status` lists the topic keys", file=sys.stderr)
            failed += 1
            continue
        tags = {PUBLISH_TAG: "now"} if args.now else {}
        result = job.execute_in_process(
            partition_key=key, instance=instance, tags=tags, raise_on_error=False,
            run_config=QUIET_LOGS,
        )  # fmt: skip
        if not result.success:
            print(f"{key}: FAILED: {failure_reason(instance, result.run_id)}", file=sys.stderr)
            failed += 1
            continue
        meta = result.asset_materializations_for_node("publications")[0].metadata
        state = meta["state"].value
        if state == "scheduled":
            print(f"{key}: scheduled for {meta['slot'].value}")
        else:
            posts = [k.removesuffix("_post_id") for k in meta if k.endswith("_post_id")]
            print(f"{key}: published to {', '.join(sorted(posts))}")
    return 1 if failed else 0


def cmd_analytics(args: argparse.Namespace) -> int:
    import dagster as dg

    from factory_assets.definitions import defs
    from factory_assets.status import failure_reason

    instance = dg.DagsterInstance.get()
    result = defs.resolve_job_def("refresh_analytics").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET_LOGS
    )
    if not result.success:
        print(f"analytics FAILED: {failure_reason(instance, result.run_id)}", file=sys.stderr)
        return 1
    pulled = result.asset_materializations_for_node("post_metrics")[0].metadata
    report = result.asset_materializations_for_node("channel_analytics")[0].metadata
    for key, value in report.items():
        if key.endswith("_status") or key.endswith("_report"):
            print(f"{key}: {value.value}")
    print(
        f"analytics: posts={pulled['posts'].value} "
        f"snapshots={pulled['snapshots_recorded'].value} errors={pulled['errors'].value}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    publish = sub.add_parser("publish", help="post finished topics (their slot, or --now)")
    publish.add_argument("keys", nargs="+", metavar="KEY", help="topic keys (see factory status)")
    publish.add_argument("--now", action="store_true", help="ignore the posting calendar")
    publish.set_defaults(func=cmd_publish)
    analytics = sub.add_parser("analytics", help="pull metrics now and write the reports")
    analytics.set_defaults(func=cmd_analytics)
