"""fal-client 1.0.3, unmodified, against the fake fal in tests/fakes/fal.py: the queue round trip,
the picture fitted to 1080x1920, its cost, reruns that do not pay twice, Retry-After honoured,
5xx / timeout / malformed results as clear errors without the key; then scene_images on a
channel whose chain is [fal, procedural], with the key and without it.

Not covered: the real fal.ai service and its models' picture quality.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from PIL import Image
from pytest_httpserver import HTTPServer

from factory_assets.definitions import offline_resources
from factory_assets.partitions import topics
from factory_assets.scene_images import scene_images
from factory_assets.script import script
from factory_assets.voiceover import voiceover
from factory_core.costs import PriceTable
from factory_core.models import SceneImages
from factory_resources.fal_images import FalImages, record_path, scene_seed
from factory_resources.faults import ProviderError
from factory_resources.project_db import project_engine, topic_costs
from factory_resources.store import MediaStore

from .conftest import QUIET, make_request
from .fakes.fal import FakeFal

KEY = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc:5ecre75ecre75ecre7"
SCHNELL = "fal-ai/flux/schnell"


@pytest.fixture
def fake(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeFal:
    monkeypatch.setenv("FAL_KEY", KEY)
    return FakeFal(httpserver)


def _fal(fake: FakeFal, **config: object) -> FalImages:
    settings = {"poll_interval_s": 0.01, "backoff_s": 0.01, "timeout_s": 5.0, **config}
    return FalImages(base_url=fake.base_url, **settings)  # type: ignore[arg-type]


def _draw(fal: FalImages, out: Path, prompt: str = "a lighthouse at dusk", seed: int = 7) -> list:
    return fal.text_to_image(SCHNELL, prompt, seed, 768, 1344, out)


def test_a_queued_picture_is_fitted_written_and_priced(fake: FakeFal, tmp_path: Path) -> None:
    out = tmp_path / "scene-00.png"
    lines = _draw(_fal(fake), out)

    with Image.open(out) as img:
        assert (img.format, img.size) == ("PNG", (1080, 1920))
    [line] = lines
    assert (line.provider, line.model, line.unit) == ("fal", SCHNELL, "megapixel")
    assert line.units == pytest.approx(768 * 1344 / 1e6, abs=1e-4)
    assert line.amount_usd == pytest.approx(line.units * 0.003, abs=1e-6)

    [submit] = fake.submits()
    assert submit.path == "/fal-ai/flux/schnell"
    assert submit.authorization == f"Key {KEY}"
    assert submit.body == {
        "prompt": "a lighthouse at dusk", "image_size": {"width": 768, "height": 1344},
        "seed": 7, "num_images": 1, "output_format": "png", "enable_safety_checker": True,
    }  # fmt: skip
    job = next(iter(fake.jobs.values()))
    assert job.polls >= fake.polls_to_complete  # waited through IN_QUEUE and IN_PROGRESS
    [download] = [s for s in fake.seen if s.host == "v3.fal.media"]
    assert download.authorization == ""  # file URLs are public: the key stays at home
    assert next(iter(fake.jobs)) in record_path(out).read_text()


def test_a_rerun_does_not_pay_again_unless_the_picture_changed(
    fake: FakeFal, tmp_path: Path
) -> None:
    fal, out = _fal(fake), tmp_path / "scene-00.png"
    _draw(fal, out)
    assert _draw(fal, out) == []  # same request, picture intact: no call, no cost
    assert len(fake.submits()) == 1

    Image.new("RGB", (1080, 1920), "red").save(out)  # replaced by something else
    assert len(_draw(fal, out)) == 1
    assert _draw(fal, out, prompt="another prompt") != []  # a different request is paid for
    assert len(fake.submits()) == 3


def test_a_job_interrupted_after_submit_is_resumed_not_resubmitted(
    fake: FakeFal, tmp_path: Path
) -> None:
    fake.fail_downloads = 10  # the file host is down through every retry of the first run
    fal, out = _fal(fake, attempts=2), tmp_path / "scene-00.png"
    with pytest.raises(ProviderError, match="HTTP 503"):
        _draw(fal, out)
    assert not out.exists() and '"submitted"' in record_path(out).read_text()

    fake.fail_downloads = 0
    [line] = _draw(fal, out)  # paid once, on the first run's request
    assert len(fake.submits()) == 1 and line.amount_usd > 0
    assert out.exists()


def test_same_scene_same_seed_same_request(fake: FakeFal, tmp_path: Path) -> None:
    seed = scene_seed("demo--lighthouses-1a2b3c4d", 3)
    assert seed == scene_seed("demo--lighthouses-1a2b3c4d", 3)
    assert seed != scene_seed("demo--lighthouses-1a2b3c4d", 4)
    assert 0 <= seed < 2**31
    fal = _fal(fake)
    _draw(fal, tmp_path / "a.png", seed=seed)
    _draw(fal, tmp_path / "b.png", seed=seed)
    first, second = fake.submits()
    assert first.body == second.body
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_a_rate_limit_waits_as_long_as_retry_after_says(fake: FakeFal, tmp_path: Path) -> None:
    fake.rate_limit_once_s = 1
    started = time.monotonic()
    [line] = _draw(_fal(fake), tmp_path / "scene-00.png")
    first, second = fake.submits()
    # fal-client alone would retry after ~0.1 s; our retry waited the second fal asked for.
    assert second.at - first.at >= 0.95
    assert time.monotonic() - started >= 0.95
    assert line.amount_usd > 0


def test_persistent_5xx_ends_in_a_clear_error_after_the_attempts(
    fake: FakeFal, tmp_path: Path
) -> None:
    fake.fail_status, fake.fail_detail = 500, "GPU worker crashed"
    with pytest.raises(ProviderError) as caught:
        _draw(_fal(fake, attempts=3), tmp_path / "scene-00.png")
    assert (caught.value.provider, caught.value.status) == ("fal", 500)
    assert str(caught.value) == "fal (HTTP 500): GPU worker crashed"
    assert len(fake.submits()) == 3
    assert not (tmp_path / "scene-00.png").exists()


def test_a_job_that_never_finishes_times_out_and_is_cancelled(
    fake: FakeFal, tmp_path: Path
) -> None:
    fake.never_complete = True
    with pytest.raises(ProviderError, match=r"not done after 0\.3s .*cancelled") as caught:
        _draw(_fal(fake, timeout_s=0.3), tmp_path / "scene-00.png")
    assert caught.value.provider == "fal"
    assert [job.cancelled for job in fake.jobs.values()] == [True]


def test_a_result_without_images_is_a_clear_error(fake: FakeFal, tmp_path: Path) -> None:
    fake.malformed = True
    with pytest.raises(ProviderError, match="malformed result: no images"):
        _draw(_fal(fake), tmp_path / "scene-00.png")
    assert not (tmp_path / "scene-00.png").exists()


def test_the_key_never_shows_in_error_text(fake: FakeFal, tmp_path: Path) -> None:
    # A server that echoes the credential back: neither half of the key may reach the error.
    fake.fail_status, fake.fail_detail = 401, f"Invalid key: Key {KEY} (id {KEY.split(':')[0]})"
    with pytest.raises(ProviderError) as caught:
        _draw(_fal(fake), tmp_path / "scene-00.png")
    text = f"{caught.value} {caught.value.reason!r} {caught.value.args!r}"
    for part in (KEY, *KEY.split(":")):
        assert part not in text
    assert caught.value.status == 401 and "Invalid key" in text
    assert len(fake.submits()) == 1  # a refused key is not retried


def test_no_key_and_no_price_fail_before_any_call(
    fake: FakeFal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fal = _fal(fake)
    with pytest.raises(ProviderError, match="no price for fal-ai/some-new-model"):
        fal.text_to_image("fal-ai/some-new-model", "x", 1, 768, 1344, tmp_path / "a.png")
    monkeypatch.delenv("FAL_KEY")
    assert fal.available("FAL_KEY") == "FAL_KEY is not set"
    with pytest.raises(ProviderError, match="FAL_KEY is not set"):
        _draw(fal, tmp_path / "a.png")
    assert fake.seen == []


def test_a_reference_travels_as_a_data_uri(fake: FakeFal, tmp_path: Path) -> None:
    reference = tmp_path / "face.png"
    Image.new("RGB", (600, 700), (200, 120, 90)).save(reference)
    [line] = _fal(fake).with_reference(
        "fal-ai/flux-pulid", "a chef in a kitchen", reference, 5, tmp_path / "v.png"
    )
    [submit] = fake.submits()
    assert submit.path == "/fal-ai/flux-pulid"
    assert submit.body["reference_image_url"].startswith("data:image/png;base64,")
    assert submit.body["image_size"] == {"width": 768, "height": 1344}
    assert line.model == "fal-ai/flux-pulid" and line.unit_price_usd == pytest.approx(0.033)
    # Per-image models are billed per picture, whatever its size.
    table = PriceTable()
    per_image = _fal(fake).with_reference(
        "fal-ai/flux-pro/kontext", "a chef", reference, 5, tmp_path / "k.png", prices=table
    )
    assert (per_image[0].unit, per_image[0].units, per_image[0].amount_usd) == ("image", 1, 0.04)
    assert "image_url" in fake.submits()[1].body


# --- the asset ---------------------------------------------------------------------------------


def _run(home: Path, fake: FakeFal, chain: list[str]) -> tuple[str, dg.ExecuteInProcessResult]:
    channel = home / "channels" / "falchan"
    channel.mkdir(parents=True, exist_ok=True)
    (channel / "channel.yaml").write_text(
        yaml.safe_dump({"owner": "alice", "providers": {"images": {"chain": chain}}}),
        encoding="utf-8",
    )
    request = make_request("falchan", "How lighthouses guide ships", duration_s=15)
    MediaStore(home=str(home)).save_request(request)
    resources = {**offline_resources(str(home)), "fal": _fal(fake)}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(topics.name, [request.key])
        result = dg.materialize(
            [script, voiceover, scene_images], partition_key=request.key,
            resources=resources, instance=instance, run_config=QUIET, raise_on_error=False,
        )  # fmt: skip
    return request.key, result


def _materialize(home: Path, fake: FakeFal, chain: list[str]) -> tuple[str, dict]:
    key, result = _run(home, fake, chain)
    assert result.success
    [event] = result.asset_materializations_for_node("scene_images")
    return key, event.metadata


@pytest.mark.slow
def test_scene_images_on_a_fal_channel(fake: FakeFal, tmp_path: Path) -> None:
    home = tmp_path / "factory-home"
    key, meta = _materialize(home, fake, ["fal", "procedural"])

    pictures = SceneImages.model_validate_json(
        (home / "topics" / key / "scene_images.json").read_text()
    )
    assert {p.source for p in pictures.images} == {f"fal:{SCHNELL}"}
    assert len(fake.submits()) == len(pictures.images)
    prompts = [s.body["prompt"] for s in fake.submits()]
    assert len(set(prompts)) == len(prompts)  # each scene its own visual prompt
    for picture in pictures.images:
        with Image.open(home / "topics" / key / picture.image_file) as img:
            assert img.size == (1080, 1920)
    assert meta["provider"].value == "fal"
    assert meta["provider_chain"].value == "fal → procedural"
    assert meta["fallbacks"].value == []
    ledger = topic_costs(project_engine(home), key)
    assert [(c.provider, c.stage) for c in ledger] == [("fal", "scene_images")] * len(
        pictures.images
    )
    assert meta["cost_usd"].value == pytest.approx(sum(c.amount_usd for c in ledger))
    assert meta["cost_usd"].value == pytest.approx(len(pictures.images) * 0.0031, abs=1e-3)


@pytest.mark.slow
def test_scene_images_without_the_key_fall_back_on_record(
    fake: FakeFal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAL_KEY")
    home = tmp_path / "factory-home"
    key, meta = _materialize(home, fake, ["fal", "procedural"])

    pictures = SceneImages.model_validate_json(
        (home / "topics" / key / "scene_images.json").read_text()
    )
    assert {p.source for p in pictures.images} == {"procedural"}
    assert meta["provider"].value == "procedural"
    [fallback] = meta["fallbacks"].value
    assert fallback["provider"] == "fal" and "FAL_KEY is not set" in fallback["reason"]
    assert fallback["scenes"] == [p.index for p in pictures.images]
    assert meta["cost_usd"].value == 0.0
    assert topic_costs(project_engine(home), key) == []
    assert fake.seen == []


@pytest.mark.slow
def test_when_the_last_provider_fails_the_asset_fails_with_the_reason(
    fake: FakeFal, tmp_path: Path
) -> None:
    fake.fail_status, fake.fail_detail = 403, "User is locked. Reason: Exhausted balance."
    _, result = _run(tmp_path / "factory-home", fake, ["fal"])
    assert not result.success
    [failure] = [e for e in result.get_step_failure_events() if e.step_key == "scene_images"]
    message = failure.step_failure_data.user_failure_data.description
    assert "every image provider in the chain ['fal'] failed" in message
    assert "fal (HTTP 403): User is locked. Reason: Exhausted balance." in message
    assert len(fake.submits()) == 1  # refused, not retried; and fal was not asked again
