"""A topic made with the media bucket on (moto's S3 server on 127.0.0.1), rendered once per module.

Covers: every file of the topic lands in the bucket under its SHA-256 key and the manifest (in
the bucket and in the folder) says so; the assets' metadata names the manifest and never the
credentials; a second factory home that has never seen the topic (another machine) runs the
publications step from the bucket alone, and the publisher gets the bucket's bytes even when
that machine's folder holds a different video; a missing bucket fails the step with advice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from factory_assets.definitions import build_definitions
from factory_assets.partitions import topics
from factory_assets.status import failure_reason
from factory_core.media_manifest import media_key
from factory_core.models import TopicRequest
from factory_resources.store import MediaStore
from tests.conftest import QUIET, make_request
from tests.fakes.s3_server import FAKE_ENV, S3Server

pytestmark = pytest.mark.slow


@dataclass
class OnS3:
    home: Path
    bucket: str
    instance: dg.DagsterInstance
    request: TopicRequest
    result: dg.ExecuteInProcessResult
    s3: S3Server

    def store(self, home: Path) -> MediaStore:
        return MediaStore(home=str(home), bucket=self.bucket, endpoint_url=self.s3.endpoint_url)


@pytest.fixture(scope="module")
def on_s3(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnS3]:
    home = tmp_path_factory.mktemp("s3-home")
    bucket = s3_server.bucket()
    store = MediaStore(home=str(home), bucket=bucket, endpoint_url=s3_server.endpoint_url)
    request = make_request("demo", "Why is the sea salty", duration_s=15)
    saved = os.environ.get("FACTORY_HOME")
    os.environ["FACTORY_HOME"] = str(home)
    try:
        with dg.instance_for_test() as instance:
            store.save_request(request)
            instance.add_dynamic_partitions(topics.name, [request.key])
            job = build_definitions(str(home), {"store": store}).resolve_job_def("produce_topic")
            result = job.execute_in_process(
                partition_key=request.key, instance=instance, raise_on_error=False, run_config=QUIET
            )
            yield OnS3(home, bucket, instance, request, result, s3_server)
    finally:
        if saved is None:
            os.environ.pop("FACTORY_HOME", None)
        else:
            os.environ["FACTORY_HOME"] = saved


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_file_is_in_the_bucket_under_its_hash(on_s3: OnS3) -> None:
    assert on_s3.result.success, failure_reason(on_s3.instance, on_s3.result.run_id)
    folder = on_s3.home / "topics" / on_s3.request.key
    files = {
        p.relative_to(folder).as_posix(): p
        for p in folder.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    for expected in ["request.json", "script.json", "voice.wav", "voiceover.json",
                     "scene_images.json", "scenes/scene-01.png", "captions.srt", "captions.ass",
                     "audio.m4a", "render_plan.json", "video.mp4", "cover_9x16.jpg",
                     "cover_16x9.jpg"]:  # fmt: skip
        assert expected in files, f"{expected} was not made"
    remote = json.loads(on_s3.s3.read(on_s3.bucket, f"topics/{on_s3.request.key}/manifest.json"))
    assert remote == json.loads((folder / "manifest.json").read_text())
    assert sorted(remote["files"]) == sorted(files)
    keys = set(on_s3.s3.keys(on_s3.bucket, "media/"))
    for name, path in files.items():
        entry = remote["files"][name]
        assert entry["sha256"] == _sha(path) and entry["size"] == path.stat().st_size
        assert entry["key"] == media_key(entry["sha256"], path.suffix) and entry["key"] in keys
    video_key = remote["files"]["video.mp4"]["key"]
    assert on_s3.s3.read(on_s3.bucket, video_key) == files["video.mp4"].read_bytes()


def test_metadata_names_the_manifest_not_the_credentials(on_s3: OnS3) -> None:
    meta = on_s3.result.asset_materializations_for_node("video")[0].metadata
    assert meta["media_manifest"].value == (
        f"s3://{on_s3.bucket}/topics/{on_s3.request.key}/manifest.json"
    )
    assert str(meta["media_video_key"].value).startswith("media/sha256/")
    assert meta["media_uploaded"].value >= 2  # audio.m4a and video.mp4 at least
    for node in ["script", "voiceover", "scene_images", "subtitles", "video", "thumbnail"]:
        text = repr(on_s3.result.asset_materializations_for_node(node)[0].metadata)
        assert "media_manifest" in text
        assert FAKE_ENV["AWS_SECRET_ACCESS_KEY"] not in text
        assert FAKE_ENV["AWS_ACCESS_KEY_ID"] not in text


def test_another_machine_publishes_the_bucket_bytes(on_s3: OnS3, tmp_path: Path) -> None:
    other = tmp_path / "other-machine"
    store = on_s3.store(other)
    # This machine's folder has a stale manifest copy and a different video.mp4 (as if edited
    # here): the pull keeps the local edit, but the post must carry the bucket's bytes.
    folder = store.topic_dir(on_s3.request.key)
    manifest = on_s3.s3.read(on_s3.bucket, f"topics/{on_s3.request.key}/manifest.json")
    (folder / "manifest.json").write_bytes(manifest)
    (folder / "video.mp4").write_bytes(b"not the rendered video")
    job = build_definitions(str(other), {"store": store}).resolve_job_def("publish_topic")
    result = job.execute_in_process(
        partition_key=on_s3.request.key, instance=on_s3.instance, raise_on_error=False,
        run_config=QUIET,
    )  # fmt: skip
    assert result.success, failure_reason(on_s3.instance, result.run_id)
    entries = json.loads(manifest)["files"]
    video = on_s3.s3.read(on_s3.bucket, entries["video.mp4"]["key"])
    cover = on_s3.s3.read(on_s3.bucket, entries["cover_9x16.jpg"]["key"])
    posts = sorted((other / "outbox" / "demo").glob("*/*/post.json"))
    assert len(posts) == 5  # YouTube, TikTok, Instagram, X, Telegram outboxes
    for post in posts:
        assert (post.parent / "video.mp4").read_bytes() == video
        assert (post.parent / "thumbnail.jpg").read_bytes() == cover
    # The rest of the topic came from the bucket too (the step read script.json from it).
    assert (folder / "script.json").read_bytes() == on_s3.s3.read(
        on_s3.bucket, entries["script.json"]["key"]
    )


def test_missing_bucket_fails_the_step_with_advice(on_s3: OnS3, tmp_path: Path) -> None:
    home = tmp_path / "h"
    request = make_request("demo", "A bucket nobody made")
    MediaStore(home=str(home)).save_request(request)  # recorded locally, no bucket yet
    on_s3.instance.add_dynamic_partitions(topics.name, [request.key])
    store = MediaStore(home=str(home), bucket="never-created", endpoint_url=on_s3.s3.endpoint_url)
    job = build_definitions(str(home), {"store": store}).resolve_job_def("produce_topic")
    result = job.execute_in_process(
        partition_key=request.key, instance=on_s3.instance, raise_on_error=False,
        run_config=QUIET, asset_selection=[dg.AssetKey("script")],
    )  # fmt: skip
    assert not result.success
    reason = failure_reason(on_s3.instance, result.run_id)
    assert "'never-created' does not exist" in reason and "FACTORY_MEDIA_BUCKET" in reason
    assert FAKE_ENV["AWS_SECRET_ACCESS_KEY"] not in reason
