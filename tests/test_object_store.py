"""The media bucket adapter and the store's pull/push, against moto's S3 server on 127.0.0.1.

Covers: content-addressed keys, put-if-absent, atomic checked downloads, list/delete, the errors
a user sees (missing bucket, missing object, unreachable endpoint; no secrets in them), and
MediaStore.push_topic/pull_topic between two factory homes (two machines) with small files.
Rendering a real topic with the bucket on is in test_media_on_s3.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from factory_core.media_manifest import ManifestEntry, media_key, needs_download
from factory_resources.object_store import ObjectStore, ObjectStoreError
from factory_resources.store import MediaStore
from tests.conftest import make_request
from tests.fakes.s3_server import FAKE_ENV, S3Server

SECRET = FAKE_ENV["AWS_SECRET_ACCESS_KEY"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.bucket()


@pytest.fixture
def objects(s3_server: S3Server, bucket: str) -> ObjectStore:
    return ObjectStore(bucket, s3_server.endpoint_url)


def test_media_key_is_content_addressed() -> None:
    digest = _sha(b"x")
    assert media_key(digest, ".MP4") == f"media/sha256/{digest[:2]}/{digest}.mp4"
    with pytest.raises(ValueError, match="SHA-256"):
        media_key("../../etc/passwd", ".mp4")


def test_round_trip_and_idempotence(
    objects: ObjectStore, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "video.mp4"
    source.write_bytes(data)
    first = objects.put_file(source)
    assert first.key == media_key(_sha(data), ".mp4") and first.uploaded
    assert s3_server.read(bucket, first.key) == data
    # Same bytes under another name: same object, nothing sent again.
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(data)
    second = objects.put_file(copy)
    assert second.key == first.key and not second.uploaded
    assert s3_server.keys(bucket) == [first.key]

    target = tmp_path / "down" / "got.mp4"
    objects.get_file(first.key, target, sha256=first.sha256)
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["got.mp4"]  # no temporaries left

    assert [o.key for o in objects.list("media/")] == [first.key]
    assert objects.delete([first.key, "media/sha256/00/absent.mp4"]) == 2
    assert s3_server.keys(bucket) == []


def test_download_is_checked_against_the_hash(
    objects: ObjectStore, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "a.png"
    source.write_bytes(b"the real picture")
    stored = objects.put_file(source)
    s3_server.client().put_object(Bucket=bucket, Key=stored.key, Body=b"tampered")
    target = tmp_path / "out.png"
    with pytest.raises(ObjectStoreError, match=r"not the .* its manifest records"):
        objects.get_file(stored.key, target, sha256=stored.sha256)
    assert not target.exists() and list(tmp_path.glob(".out.png*")) == []
    with pytest.raises(ObjectStoreError, match="does not exist, though a manifest lists it"):
        objects.get_file("media/sha256/ab/missing.png", target)


def test_missing_bucket_says_what_to_do(s3_server: S3Server, tmp_path: Path) -> None:
    store = ObjectStore("no-such-bucket-here", s3_server.endpoint_url)
    with pytest.raises(ObjectStoreError) as caught:
        store.check()
    message = str(caught.value)
    assert "no-such-bucket-here" in message and "does not exist" in message
    assert "FACTORY_MEDIA_BUCKET" in message and SECRET not in message
    source = tmp_path / "x.wav"
    source.write_bytes(b"wave")
    with pytest.raises(ObjectStoreError, match="create it"):
        store.put_file(source)


def test_unreachable_endpoint_names_the_setting(s3_server: S3Server) -> None:
    # A closed port: botocore retries, then the adapter says which setting to check.
    store = ObjectStore("media", "http://127.0.0.1:9")
    with pytest.raises(ObjectStoreError, match="FACTORY_S3_ENDPOINT_URL") as caught:
        store.get_bytes("topics/x/manifest.json")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("synced", "local", "expected"),
    [
        ("a", None, True),  # missing here
        ("a", "b", False),  # same bytes as the bucket (b is remote below)
        ("b", "c", False),  # edited here since the last sync: keep for the next push
        ("a", "c", True),  # the bucket moved on: its version wins
        (None, "c", True),  # never synced here: the bucket is the truth
    ],
)
def test_pull_decision(synced: str | None, local: str | None, expected: bool) -> None:
    def entry(tag: str) -> ManifestEntry:
        return ManifestEntry(sha256=_sha(tag.encode()), size=1, key="k", mtime_ns=0)

    remote = entry("b")
    local_sha = _sha(local.encode()) if local else None
    assert needs_download(remote, entry(synced) if synced else None, local_sha) is expected


def _topic_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def test_push_then_pull_on_another_home(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    here = MediaStore(home=str(tmp_path / "a"), bucket=bucket, endpoint_url=s3_server.endpoint_url)
    request = make_request("demo", "Media that travels")
    here.save_request(request)  # pushes request.json at once
    folder = here.topic_dir(request.key)
    (folder / "scenes").mkdir()
    (folder / "scenes" / "scene-01.png").write_bytes(b"png-1")
    (folder / "voice.wav").write_bytes(b"wav" * 1000)
    (folder / ".voice.tmp.wav").write_bytes(b"half")  # an unfinished atomic write: not media
    pushed = here.push_topic(request.key)
    assert pushed is not None and pushed.transferred == 2
    remote = json.loads(s3_server.read(bucket, f"topics/{request.key}/manifest.json"))
    assert sorted(remote["files"]) == ["request.json", "scenes/scene-01.png", "voice.wav"]
    for name, entry in remote["files"].items():
        data = (folder / name).read_bytes()
        assert entry["key"] == media_key(_sha(data), Path(name).suffix)
        assert s3_server.read(bucket, entry["key"]) == data
    assert json.loads((folder / "manifest.json").read_text()) == remote

    # Nothing changed: nothing hashed-and-sent, the manifest stays as it was.
    again = here.push_topic(request.key)
    assert again is not None and again.transferred == 0

    there = MediaStore(home=str(tmp_path / "b"), bucket=bucket, endpoint_url=s3_server.endpoint_url)
    pulled = there.pull_topic(request.key)
    assert pulled is not None and pulled.transferred == 3
    other = there.topic_dir(request.key)
    assert _topic_files(other) == {k: v for k, v in _topic_files(folder).items() if "/." not in k
                                   and not k.startswith(".")}  # fmt: skip
    assert there.load_request(request.key) == request
    assert there.pull_topic(request.key).transferred == 0  # type: ignore[union-attr]

    # A step there changes a file and pushes; the first machine's next pull picks it up, while
    # a file edited by hand here (since the last sync) is kept for its own push.
    (other / "voice.wav").write_bytes(b"new voice")
    there.push_topic(request.key)
    (folder / "scenes" / "scene-01.png").write_bytes(b"edited here")
    assert here.pull_topic(request.key).transferred == 1  # type: ignore[union-attr]
    assert (folder / "voice.wav").read_bytes() == b"new voice"
    assert (folder / "scenes" / "scene-01.png").read_bytes() == b"edited here"
    assert here.push_topic(request.key).transferred == 1  # type: ignore[union-attr]
    assert there.media_file(request.key, "scenes/scene-01.png").read_bytes() == b"edited here"  # type: ignore[union-attr]


def test_without_a_bucket_nothing_leaves_the_machine(tmp_path: Path) -> None:
    store = MediaStore(home=str(tmp_path / "h"))
    request = make_request("demo", "Stays local")
    store.save_request(request)
    assert store.objects is None
    assert store.push_topic(request.key) is None and store.pull_topic(request.key) is None
    assert not (store.topic_dir(request.key) / "manifest.json").exists()
    assert (
        store.media_file(request.key, "request.json")
        == store.topic_dir(request.key) / "request.json"
    )


def test_a_topic_made_before_the_bucket_is_stored_when_first_published(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    request = make_request("demo", "Older than the bucket")
    MediaStore(home=str(home)).save_request(request)
    local = MediaStore(home=str(home)).topic_dir(request.key) / "video.mp4"
    local.write_bytes(b"rendered before the bucket existed")
    store = MediaStore(home=str(home), bucket=bucket, endpoint_url=s3_server.endpoint_url)
    fetched = store.media_file(request.key, "video.mp4")
    assert fetched is not None and fetched != local
    assert fetched.read_bytes() == local.read_bytes()
    manifest = json.loads(s3_server.read(bucket, f"topics/{request.key}/manifest.json"))
    assert s3_server.read(bucket, manifest["files"]["video.mp4"]["key"]) == local.read_bytes()
    assert store.media_file(request.key, "cover_9x16.jpg") is None
