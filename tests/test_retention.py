"""Retention: the pure decision (factory_core.retention) as tables, and `factory media prune`
against moto's S3 server with small synthetic topics (no rendering).

Covers: live posts and work in progress are never removed whatever their age; old unposted
topics go (folder, manifest, objects only they used); an object shared with a kept topic stays;
young unreferenced objects (an upload whose manifest is not written yet) stay; --dry-run
removes nothing; the bytes freed are what was removed.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from factory_cli.main import main
from factory_core.media_manifest import manifest_key
from factory_core.models import Language
from factory_core.publish_metadata import Platform, PostMetadata
from factory_core.publishing import PublishedPost, PublishRequest, publication_marker
from factory_core.retention import BucketObject, TopicFacts, plan_prune
from factory_resources.project_db import project_engine
from factory_resources.publication_ledger import PublicationLedger
from factory_resources.store import MediaStore
from tests.conftest import make_request
from tests.fakes.s3_server import S3Server

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _facts(key: str, days: float, **fields: object) -> TopicFacts:
    return TopicFacts(key=key, last_changed=NOW - timedelta(days=days), **fields)  # type: ignore[arg-type]


def _obj(key: str, days: float, size: int = 10) -> BucketObject:
    return BucketObject(key=key, size=size, last_modified=NOW - timedelta(days=days))


@pytest.mark.parametrize(
    ("facts", "action", "reason"),
    [
        (_facts("t", 90, live_posts=["youtube abc"]), "keep", "a live post points to it"),
        (_facts("t", 90, in_progress=["run 1a2b is STARTED"]), "keep", "still in progress"),
        (_facts("t", 90, live_posts=["x 1"], in_progress=["r"]), "keep", "live post"),
        (_facts("t", 5), "keep", "within the window"),
        (_facts("t", 31, local_bytes=7), "remove", "not posted, last changed 31.0 days ago"),
    ],
)
def test_topic_verdicts(facts: TopicFacts, action: str, reason: str) -> None:
    plan = plan_prune([facts], [], NOW, 30)
    assert plan.topics[0].action == action and reason in plan.topics[0].reason


def test_objects_go_only_when_no_kept_topic_needs_them() -> None:
    topics = [
        _facts("old", 60, local_bytes=100, object_keys={"m/only-old", "m/shared"}),
        _facts("posted", 60, object_keys={"m/posted"}, live_posts=["youtube p"]),
        _facts("new", 1, object_keys={"m/shared"}),
    ]
    objects = [
        _obj("m/only-old", 60, 5),
        _obj("m/shared", 60),
        _obj("m/posted", 60),
        _obj("m/orphan-old", 45, 3),
        _obj("m/orphan-young", 0.01),  # a push whose manifest is not written yet
        _obj("m/only-old-but-young", 0.01, 2),
    ]
    topics[0].object_keys.add("m/only-old-but-young")
    plan = plan_prune(topics, objects, NOW, 30)
    assert [t.key for t in plan.removed_topics] == ["old"]
    assert [o.key for o in plan.remove_objects] == [
        "m/only-old",
        "m/only-old-but-young",
        "m/orphan-old",
    ]
    assert plan.kept_objects == 3
    assert plan.bytes_freed == 100 + 5 + 2 + 3
    # Zero days: everything not posted and not in progress goes, still never a live post's.
    everything = plan_prune(topics, objects, NOW, 0)
    assert {t.key for t in everything.removed_topics} == {"old", "new"}
    assert "m/posted" not in {o.key for o in everything.remove_objects}
    with pytest.raises(ValueError, match="--older-than"):
        plan_prune(topics, objects, NOW, -1)


# --- the command -------------------------------------------------------------------------


def _topic(store: MediaStore, name: str, files: dict[str, bytes], age_days: float) -> str:
    request = make_request("demo", name)
    store.save_request(request)
    folder = store.topic_dir(request.key)
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    stamp = time.time() - age_days * 86400
    for path in folder.rglob("*"):
        os.utime(path, (stamp, stamp))
    store.push_topic(request.key)
    return request.key


def _published(home: Path, key: str) -> None:
    ledger = PublicationLedger(project_engine(home))
    request = PublishRequest(
        topic_key=key, platform=Platform.YOUTUBE, account="chan",
        marker=publication_marker(key, Platform.YOUTUBE, "chan"), video=Path("video.mp4"),
        metadata=PostMetadata(platform=Platform.YOUTUBE, language=Language.EN, title="t", text="t"),
        duration_s=15.0,
    )  # fmt: skip
    ledger.intend(request)
    ledger.mark_published(request.marker, PublishedPost(platform=Platform.YOUTUBE, post_id="yt1"))


def _sending(home: Path, key: str) -> None:
    request = PublishRequest(
        topic_key=key, platform=Platform.X, account="chan",
        marker=publication_marker(key, Platform.X, "chan"), video=Path("video.mp4"),
        metadata=PostMetadata(platform=Platform.X, language=Language.EN, text="t"),
        duration_s=15.0,
    )  # fmt: skip
    PublicationLedger(project_engine(home)).intend(request)


def test_prune_command(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_server.bucket()
    monkeypatch.setenv("FACTORY_MEDIA_BUCKET", bucket)
    monkeypatch.setenv("FACTORY_S3_ENDPOINT_URL", s3_server.endpoint_url)
    home = Path(os.environ["FACTORY_HOME"])
    store = MediaStore()
    shared = b"shared scene picture"
    posted = _topic(store, "Old and posted", {"video.mp4": b"posted video"}, 90)
    old = _topic(store, "Old, never posted", {"video.mp4": b"old video" * 100,
                                              "scenes/scene-01.png": shared}, 60)  # fmt: skip
    recent = _topic(store, "Made yesterday", {"scenes/scene-01.png": shared}, 1)
    sending = _topic(store, "Old, being posted", {"video.mp4": b"sending video"}, 60)
    elsewhere = _topic(store, "Old, only in the bucket", {"video.mp4": b"elsewhere"}, 60)
    _published(home, posted)
    _sending(home, sending)
    remove_local = home / "topics" / elsewhere
    for path in sorted(remove_local.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    remove_local.rmdir()

    def manifest(key: str) -> dict:
        return json.loads(s3_server.read(bucket, manifest_key(key)))

    posted_video = manifest(posted)["files"]["video.mp4"]["key"]
    old_video = manifest(old)["files"]["video.mp4"]["key"]
    elsewhere_video = manifest(elsewhere)["files"]["video.mp4"]["key"]
    shared_key = manifest(recent)["files"]["scenes/scene-01.png"]["key"]
    assert manifest(old)["files"]["scenes/scene-01.png"]["key"] == shared_key
    before = s3_server.keys(bucket)

    assert main(["media", "prune", "--older-than", "30", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert s3_server.keys(bucket) == before and (home / "topics" / old).is_dir()
    verdicts = {t["key"]: t for t in dry["topics"]}
    assert {k for k, t in verdicts.items() if t["action"] == "remove"} == {old, elsewhere}
    assert "a live post points to it: youtube yt1" in verdicts[posted]["reason"]
    assert "still in progress: a x post is being sent" in verdicts[sending]["reason"]
    assert "within the window" in verdicts[recent]["reason"]
    dry_freed = dry["bytes_freed"]

    assert main(["media", "prune", "--older-than", "30"]) == 0
    out = capsys.readouterr().out
    after = set(s3_server.keys(bucket))
    # Removed: the old unposted topic (here and in the bucket), and the one only in the bucket.
    assert not (home / "topics" / old).exists()
    assert manifest_key(old) not in after and old_video not in after
    assert manifest_key(elsewhere) not in after and elsewhere_video not in after
    # Kept: the live post's video, the shared picture, the topic in progress, the recent one.
    assert posted_video in after and (home / "topics" / posted / "video.mp4").is_file()
    assert shared_key in after and (home / "topics" / recent / "scenes" / "scene-01.png").is_file()
    assert manifest_key(sending) in after and (home / "topics" / sending).is_dir()
    assert f"removed      {old}  not posted, last changed 60.0 days ago" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith(
        "media prune: removed 2 of 5 topics, 4 objects, 0 cached copies"
    )  # video + request each
    assert f"({dry_freed} bytes)" in last and dry_freed > 900  # the old video alone is 900 bytes

    # Nothing left to remove: a second run frees nothing.
    assert main(["media", "prune", "--older-than", "30", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["bytes_freed"] == 0 and again["objects_removed"] == []
