"""`factory media prune`: remove old topics' media, never what a live post points to.

factory media prune --older-than DAYS [--dry-run] [--json]

Looks at every topic (local folders under $FACTORY_HOME/topics and, with FACTORY_MEDIA_BUCKET
set, the manifests in the bucket), the publication ledger, the outbox, the posting slots and the
Dagster runs in progress; factory_core.retention decides. Removed: the topic's folder, its
manifest in the bucket, and the bucket objects no kept topic refers to; plus fetched copies in
cache/objects/ older than the window (they come back from the bucket when needed). Outbox posts
are never touched. Prints each topic with what happened and why, and the bytes freed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg
    import sqlalchemy as sa

    from factory_core.retention import BucketObject, PrunePlan, TopicFacts
    from factory_resources.store import MediaStore

# Runs that may still read or write a topic's files.
_ACTIVE_RUNS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def live_posts(engine: sa.Engine, home: Path) -> dict[str, list[str]]:
    """Posts the platforms hold (published ledger rows) and outbox posts on disk, by topic."""
    from factory_resources.outbox import POST_FILE
    from factory_resources.publication_ledger import PublicationLedger

    found: dict[str, list[str]] = defaultdict(list)
    for row in PublicationLedger(engine).published():
        found[row.topic_key].append(f"{row.platform} {row.post_id}")
    for post in sorted((home / "outbox").glob(f"*/*/*/{POST_FILE}")):
        if post.parent.name.startswith("."):
            continue  # an unfinished post folder, not a post
        try:
            saved = json.loads(post.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        topic, marker = str(saved.get("topic_key", "")), post.parent.name
        if topic and not any(marker in entry for entry in found[topic]):  # not in the ledger
            found[topic].append(f"outbox {post.parent.parent.name} {marker}")
    return found


def in_progress(instance: dg.DagsterInstance, engine: sa.Engine) -> dict[str, list[str]]:
    """Runs queued or running, posts being sent, slots reserved and not yet posted, by topic."""
    import dagster as dg
    import sqlalchemy as sa

    from factory_core.publishing import PublicationState
    from factory_resources.post_schedule import PostSchedule, post_slots
    from factory_resources.publication_ledger import PublicationLedger, publications

    found: dict[str, list[str]] = defaultdict(list)
    statuses = [dg.DagsterRunStatus(s) for s in _ACTIVE_RUNS]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=statuses)):
        key = run.tags.get("dagster/partition")
        if key:
            found[key].append(f"run {run.run_id[:8]} is {run.status.value}")
    PublicationLedger(engine)  # creates the tables on a fresh database
    PostSchedule(engine)
    sending = [str(PublicationState.INTENDED), str(PublicationState.UPLOADING)]
    with engine.connect() as conn:
        for row in conn.execute(
            sa.select(publications.c.topic_key, publications.c.platform).where(
                publications.c.state.in_(sending)
            )
        ):
            found[row.topic_key].append(f"a {row.platform} post is being sent")
        for row in conn.execute(
            sa.select(post_slots.c.topic_key, post_slots.c.slot_at).where(
                post_slots.c.released_at.is_(None)
            )
        ):
            found[row.topic_key].append(
                f"waiting for its posting slot ({row.slot_at:%Y-%m-%d %H:%M})"
            )
    return found


def gather(
    store: MediaStore, instance: dg.DagsterInstance
) -> tuple[list[TopicFacts], list[BucketObject]]:
    from factory_core.media_manifest import MANIFEST_NAME, MEDIA_PREFIX, TopicManifest
    from factory_core.retention import BucketObject, TopicFacts
    from factory_core.slugs import is_valid_key
    from factory_resources.project_db import project_engine

    objects = store.objects
    base = store.root / "topics"
    keys = (
        {p.name for p in base.iterdir() if p.is_dir() and is_valid_key(p.name)}
        if base.is_dir()
        else set()
    )
    bucket_objects: list[BucketObject] = []
    if objects is not None:
        for obj in objects.list("topics/"):
            parts = obj.key.split("/")
            if len(parts) == 3 and parts[2] == MANIFEST_NAME and is_valid_key(parts[1]):
                keys.add(parts[1])
        bucket_objects = [
            BucketObject(key=o.key, size=o.size, last_modified=o.last_modified)
            for o in objects.list(MEDIA_PREFIX)
            if o.last_modified is not None
        ]
    engine = project_engine(store.root)
    live = live_posts(engine, store.root)
    busy = in_progress(instance, engine)
    facts: list[TopicFacts] = []
    for key in sorted(keys):
        folder = base / key
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
        stats = [p.stat() for p in files]
        changed = [s.st_mtime for p, s in zip(files, stats, strict=True) if p.name != MANIFEST_NAME]
        manifests = [store.remote_manifest(key)] if objects is not None else []
        local = folder / MANIFEST_NAME
        if local.is_file():
            try:
                manifests.append(TopicManifest.model_validate_json(local.read_text("utf-8")))
            except ValueError:
                pass
        referenced: set[str] = set()
        for manifest in manifests:
            if manifest is not None:
                referenced |= manifest.object_keys()
                changed.append(manifest.updated_at.timestamp())
        if not changed and folder.is_dir():
            changed.append(folder.stat().st_mtime)  # an empty folder: its own time
        facts.append(
            TopicFacts(
                key=key,
                last_changed=datetime.fromtimestamp(max(changed, default=0), UTC),
                local_bytes=sum(s.st_size for s in stats),
                object_keys=referenced,
                live_posts=live.get(key, []),
                in_progress=busy.get(key, []),
            )
        )
    return facts, bucket_objects


def apply(store: MediaStore, plan: PrunePlan) -> None:
    """Topics first (manifests before objects), so no manifest is left naming a gone object."""
    from factory_core.media_manifest import manifest_key

    objects = store.objects
    for topic in plan.removed_topics:
        shutil.rmtree(store.root / "topics" / topic.key, ignore_errors=True)
        if objects is not None:
            objects.delete([manifest_key(topic.key)])
    if objects is not None and plan.remove_objects:
        objects.delete(o.key for o in plan.remove_objects)


def stale_cache(store: MediaStore, cutoff: datetime) -> list[Path]:
    """Objects fetched for publishing (cache/objects/) older than the window."""
    folder = store.root / "cache" / "objects"
    if not folder.is_dir():
        return []
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and datetime.fromtimestamp(p.stat().st_mtime, UTC) <= cutoff
    ]


def cmd_prune(args: argparse.Namespace) -> int:
    import dagster as dg

    from factory_core.retention import plan_prune
    from factory_resources.object_store import ObjectStoreError
    from factory_resources.store import media_store

    if args.older_than < 0:
        print("error: --older-than must be 0 days or more", file=sys.stderr)
        return 2
    store = media_store()
    now = datetime.now(UTC)
    try:
        facts, objects = gather(store, dg.DagsterInstance.get())
        plan = plan_prune(facts, objects, now, args.older_than)
        cache = stale_cache(store, plan.cutoff)
        cache_bytes = sum(p.stat().st_size for p in cache)
        if not args.dry_run:
            apply(store, plan)
            for path in cache:
                path.unlink(missing_ok=True)
    except ObjectStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    freed = plan.bytes_freed + cache_bytes
    if args.json:
        print(
            json.dumps(
                {
                    "dry_run": args.dry_run,
                    "older_than_days": args.older_than,
                    "cutoff": plan.cutoff.isoformat(),
                    "bucket": store.objects.bucket if store.objects else None,
                    "topics": [t.model_dump() for t in plan.topics],
                    "objects_removed": [o.model_dump() for o in plan.remove_objects],
                    "objects_kept": plan.kept_objects,
                    "cache_files_removed": len(cache),
                    "bytes_freed": freed,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for topic in plan.topics:
        action = verb if topic.action == "remove" else "kept"
        print(f"{action:<12} {topic.key}  {topic.reason}  ({_mb(topic.local_bytes)} local)")
    for obj in plan.remove_objects:
        print(f"{verb:<12} {obj.key}  {obj.reason}  ({_mb(obj.size)})")
    summary = (
        f"media prune: {verb} {len(plan.removed_topics)} of {len(plan.topics)} topics, "
        f"{len(plan.remove_objects)} objects, {len(cache)} cached copies; "
        f"kept {len(plan.topics) - len(plan.removed_topics)} topics, {plan.kept_objects} objects; "
        f"{'would free' if args.dry_run else 'freed'} {_mb(freed)} ({freed} bytes)"
    )
    print(summary + (" (dry run: nothing removed)" if args.dry_run else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    media = sub.add_parser("media", help="media housekeeping: prune old topics' files")
    actions = media.add_subparsers(dest="media_command", required=True)
    prune = actions.add_parser(
        "prune", help="remove old topics' media (never a live post's, never one in progress)"
    )
    prune.add_argument(
        "--older-than", type=float, required=True, metavar="DAYS",
        help="remove topics whose files last changed more than DAYS days ago",
    )  # fmt: skip
    prune.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    prune.add_argument("--json", action="store_true", help="print one JSON object")
    prune.set_defaults(func=cmd_prune)
