"""Uploads and paths: every upload is checked by its bytes (not its name or Content-Type),
capped per file and per request, counted, and refused empty, each with a 4xx JSON error naming
the field; downloads and names cannot reach outside the caller's own folders (`..`, absolute
paths, encoded slashes, symlinks). Not covered: ElevenLabs cloning itself (test_voice_studio)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_api_support import (
    World,
    dagster_instance,
    jpeg_bytes,
    mp4_bytes,
    png_bytes,
    wav_bytes,
    world,
)

__all__ = ["dagster_instance", "world"]


def _error(response: object, status: int, code: str, field: str | None) -> dict:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["code"] == code, body
    assert body["field"] == field, body
    assert body["message"]
    return body


def test_audio_sample_with_a_wav_name_but_text_inside_is_refused(world: World) -> None:
    files = [("files", ("take1.wav", wav_bytes(12), "audio/wav")),
             ("files", ("take2.wav", b"just some notes, not audio at all\n" * 10, "audio/wav"))]  # fmt: skip
    body = _error(world.call("alice", "POST", "/v1/voices", data={"name": "me"}, files=files),
                  415, "wrong_content", "files[1]")  # fmt: skip
    assert "take2.wav" in body["message"] and "WAV" in body["message"]


def test_image_with_a_jpg_name_but_png_inside_is_refused(world: World) -> None:
    files = {"image": ("face.jpg", png_bytes(), "image/jpeg")}
    body = _error(world.call("alice", "POST", "/v1/characters", data={"name": "grace"},
                             files=files), 415, "wrong_content", "image")  # fmt: skip
    assert "JPEG" in body["message"] and "PNG" in body["message"]


def test_unsupported_extension_is_refused(world: World) -> None:
    files = [("files", ("take.exe", wav_bytes(2), "audio/wav"))]
    _error(world.call("alice", "POST", "/v1/voices", data={"name": "me"}, files=files),
           415, "unsupported_type", "files[0]")  # fmt: skip


def test_too_big_sample_is_refused_naming_the_file(world: World) -> None:
    big = wav_bytes(1) + b"\0" * (10 * 1024 * 1024)
    files = [("files", ("long.wav", big, "audio/wav"))]
    body = _error(world.call("alice", "POST", "/v1/voices", data={"name": "me"}, files=files),
                  413, "file_too_large", "files[0]")  # fmt: skip
    assert "10 MB" in body["message"]
    assert not list((world.home / "cache" / "uploads").glob("*/*")), "partial upload left behind"


def test_request_over_the_endpoints_cap_is_stopped(world: World) -> None:
    """The character endpoint takes one 10 MB image: a 12 MB body is refused as a whole,
    before the app reads it into a form."""
    files = {"image": ("face.png", png_bytes() + b"\0" * (12 * 1024 * 1024), "image/png")}
    response = world.call("alice", "POST", "/v1/characters", data={"name": "g"}, files=files)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "too_large"
    assert "limit" in response.json()["message"]


def test_too_many_samples_are_refused(world: World) -> None:
    files = [("files", (f"t{i}.wav", wav_bytes(0.1), "audio/wav")) for i in range(26)]
    body = _error(world.call("alice", "POST", "/v1/voices", data={"name": "me"}, files=files),
                  422, "file_count", "files")  # fmt: skip
    assert "26" in body["message"] and "1 to 25" in body["message"]


def test_empty_sample_and_no_samples_are_refused(world: World) -> None:
    files = [("files", ("empty.wav", b"", "audio/wav"))]
    _error(world.call("alice", "POST", "/v1/voices", data={"name": "me"}, files=files),
           400, "empty_file", "files[0]")  # fmt: skip
    missing = world.call("alice", "POST", "/v1/voices", data={"name": "me"})
    assert missing.status_code == 422
    assert missing.json()["field"] == "files"


def test_samples_that_fail_the_local_check_say_why_per_file(world: World) -> None:
    files = [("files", ("short.wav", wav_bytes(2), "audio/wav")),
             ("files", ("ok.wav", wav_bytes(12, seed=2), "audio/wav"))]  # fmt: skip
    body = _error(world.call("alice", "POST", "/v1/voices", data={"name": "me"}, files=files),
                  422, "samples_rejected", "files")  # fmt: skip
    verdicts = {s["file"].split("-", 1)[1]: s for s in body["samples"]}
    assert not verdicts["short.wav"]["accepted"] and verdicts["ok.wav"]["accepted"]
    assert "30 s" in body["message"] or "total" in body["message"]
    assert world.call("alice", "GET", "/v1/voices").json() == []


def test_brand_files_land_where_the_pipeline_looks(world: World) -> None:
    world.channel("alice", "alice-chan")
    logo = world.call("alice", "PUT", "/v1/channels/alice-chan/brand/logo",
                      files={"file": ("my logo.png", png_bytes(64, 64), "image/png")})  # fmt: skip
    assert logo.status_code == 200, logo.text
    intro = world.call("alice", "PUT", "/v1/channels/alice-chan/brand/intro",
                       files={"file": ("intro.mp4", mp4_bytes(), "video/mp4")})  # fmt: skip
    assert intro.json()["file"] == "brand/intro.mp4"
    # A new intro of another type replaces the old one (brand_file would pick the first found).
    world.call("alice", "PUT", "/v1/channels/alice-chan/brand/intro",
               files={"file": ("intro.jpg", jpeg_bytes(), "image/jpeg")})  # fmt: skip
    store = world.app.state.services.store
    assert store.brand_file("alice-chan", "logo", (".png",)) is not None
    assert store.brand_file("alice-chan", "intro", (".mp4", ".jpg")).name == "intro.jpg"
    sneaky = {"file": ("../../../etc/evil bed.wav", wav_bytes(1.5), "audio/wav")}
    music = world.call("alice", "POST", "/v1/channels/alice-chan/music", files=sneaky)
    assert music.status_code == 201, music.text
    assert music.json()["file"] == "music/evil-bed.wav"
    assert (world.home / "channels" / "alice-chan" / "music" / "evil-bed.wav").is_file()
    listed = world.call("alice", "GET", "/v1/channels/alice-chan").json()["files"]
    assert sorted(listed) == ["brand/intro.jpg", "brand/logo.png", "music/evil-bed.wav"]
    bad = world.call("alice", "PUT", "/v1/channels/alice-chan/brand/logo",
                     files={"file": ("logo.mp4", mp4_bytes(), "video/mp4")})  # fmt: skip
    _error(bad, 415, "unsupported_type", "file")
    unknown_kind = world.call("alice", "PUT", "/v1/channels/alice-chan/brand/..%2Fx",
                              files={"file": ("logo.png", png_bytes(64, 64), "image/png")})  # fmt: skip
    assert unknown_kind.status_code in (404, 422)


@pytest.fixture
def alice_video(world: World) -> str:
    world.channel("alice", "alice-chan")
    key = world.video("alice", "alice-chan", "Why is the sea salty")
    folder = world.home / "topics" / key
    (folder / "video.mp4").write_bytes(b"alice's video")
    (folder / "captions.ass").write_text("[Script Info]\n")
    return key


def test_downloads_serve_only_listed_files(world: World, alice_video: str) -> None:
    ok = world.call("alice", "GET", f"/v1/videos/{alice_video}/files/video.mp4")
    assert ok.status_code == 200 and ok.content == b"alice's video"
    assert ok.headers["content-type"] == "video/mp4"
    subtitles = world.call("alice", "GET", f"/v1/videos/{alice_video}/files/captions.ass")
    assert subtitles.status_code == 200
    for name in ("request.json", "voice.wav", "captions.srt"):  # not listed, or not there
        assert (
            world.call("alice", "GET", f"/v1/videos/{alice_video}/files/{name}").status_code == 404
        )


@pytest.mark.parametrize("path", [
    "/v1/videos/{key}/files/..%2F..%2Ffactory.db",
    "/v1/videos/{key}/files/%2Fetc%2Fpasswd",
    "/v1/videos/{key}/files/../../factory.db",
    "/v1/videos/..%2F..%2Fsecrets/files/vault.key",
    "/v1/videos/%2Fetc/files/passwd",
    "/v1/videos/..%2Fapi/status",
    "/v1/videos/alice-chan--..%2F..%2Fsecrets",
    "/v1/videos/{key}%2F..%2F..%2Fsecrets/files/video.mp4",
])  # fmt: skip
def test_no_path_leaves_the_topic_folder(world: World, alice_video: str, path: str) -> None:
    response = world.call("alice", "GET", path.format(key=alice_video))
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
    assert b"SQLite format" not in response.content and b"root:" not in response.content


def test_a_symlink_in_the_topic_folder_is_not_followed(world: World, alice_video: str,
                                                        tmp_path: Path) -> None:  # fmt: skip
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"secret outside the home")
    (world.home / "topics" / alice_video / "cover_9x16.jpg").symlink_to(outside)
    response = world.call("alice", "GET", f"/v1/videos/{alice_video}/files/cover_9x16.jpg")
    assert response.status_code == 404
    detail = world.call("alice", "GET", f"/v1/videos/{alice_video}").json()
    assert "cover_9x16.jpg" not in [f["name"] for f in detail["files"]]


@pytest.mark.parametrize("name", ["../alice-chan", "..", "%2E%2E", "/etc", "a/b", "..%2Fbob"])
def test_names_with_paths_are_refused_or_contained(world: World, name: str) -> None:
    world.channel("alice", "alice-chan")
    for method, path in (("GET", f"/v1/channels/{name}"),
                         ("DELETE", f"/v1/characters/{name}"),
                         ("POST", f"/v1/voices/{name}/test"),
                         ("PATCH", f"/v1/voices/{name}/settings")):  # fmt: skip
        response = world.call("alice", method, path, **({} if method == "GET" else {"json": {}}))
        assert response.status_code in (401, 404, 405), (path, response.text)
    bad_channel = world.call("alice", "POST", "/v1/channels", json={"name": "../escape"})
    assert bad_channel.status_code == 422 and bad_channel.json()["field"] == "name"
    assert not (world.home.parent / "escape").exists()
