"""The character studio with a real face (matplotlib's Grace Hopper sample) and the real dlib
face measure: create and validate references, variations through the fake fal (scored, a
faceless one flagged, cost in the ledger), offline variations without a key, owners kept apart,
the `factory characters` commands, and scene_images on a channel with a character.

Not covered: fal's real reference-conditioned models (the fake pastes the reference in).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dagster as dg
import matplotlib
import pytest
import sqlalchemy as sa
import yaml
from PIL import Image
from pytest_httpserver import HTTPServer

from factory_assets.definitions import offline_resources
from factory_assets.partitions import topics
from factory_assets.scene_images import scene_images
from factory_assets.script import script
from factory_assets.voiceover import voiceover
from factory_cli import characters as characters_cli
from factory_core.models import SceneImages
from factory_resources.character_studio import (
    CharacterError,
    CharacterNotFoundError,
    CharacterStudio,
    combinations,
)
from factory_resources.face_similarity import CONSISTENCY_THRESHOLD, FaceSimilarity
from factory_resources.fal_images import FalImages
from factory_resources.project_db import engine_for, project_engine, topic_costs
from factory_resources.store import MediaStore

from .conftest import QUIET, make_request
from .fakes.fal import FakeFal

GRACE = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def similarity() -> FaceSimilarity:
    return FaceSimilarity()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "factory-home"


@pytest.fixture
def engine(home: Path) -> sa.Engine:
    home.mkdir(parents=True, exist_ok=True)
    return engine_for(f"sqlite:///{home / 'studio.db'}")


@pytest.fixture
def fake(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeFal:
    monkeypatch.setenv("FAL_KEY", "fal-test-key:0123456789abcdef")
    return FakeFal(httpserver)


def _fal(fake: FakeFal) -> FalImages:
    return FalImages(base_url=fake.base_url, poll_interval_s=0.01, backoff_s=0.01)


def _studio(
    engine: sa.Engine, home: Path, sim: FaceSimilarity, fal: FalImages | None = None
) -> CharacterStudio:
    return CharacterStudio(engine, home, sim, fal=fal)


def test_create_validates_copies_and_lists_per_owner(
    engine: sa.Engine, home: Path, similarity: FaceSimilarity, tmp_path: Path
) -> None:
    studio = _studio(engine, home, similarity)
    grace = studio.create("alice", "Grace", GRACE, "a woman in a naval uniform")
    assert (grace.owner, grace.name, grace.status, grace.error) == ("alice", "grace", "ready", None)
    reference = home / "owners" / "alice" / "characters" / "grace" / "reference.png"
    assert studio.reference(grace) == reference
    with Image.open(reference) as img:
        assert (img.format, img.size) == ("PNG", (512, 600))
    assert [c.name for c in studio.list("alice")] == ["grace"]
    assert studio.get("alice", "Grace").id == grace.id

    with pytest.raises(CharacterError, match="already has a character"):
        studio.create("alice", "grace", GRACE)
    small = tmp_path / "small.png"
    Image.new("RGB", (400, 900)).save(small)
    with pytest.raises(CharacterError, match=r"400x900.*at least 512 px"):
        studio.create("alice", "tiny", small)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a picture at all")
    with pytest.raises(CharacterError, match="does not decode"):
        studio.create("alice", "junk", junk)

    # A picture without a face is kept, marked failed, and refused for variations.
    blank = tmp_path / "blank.png"
    Image.new("RGB", (640, 640), (30, 90, 160)).save(blank)
    faceless = studio.create("alice", "logo", blank)
    assert faceless.status == "failed" and "no face found" in (faceless.error or "")
    with pytest.raises(CharacterError, match="not usable: no face found"):
        studio.variations("alice", "logo", ["standing"], [], [])
    assert [c.name for c in studio.list("alice")] == ["grace", "logo"]


def test_fal_variations_are_scored_and_the_faceless_one_flagged(
    engine: sa.Engine, home: Path, similarity: FaceSimilarity, fake: FakeFal
) -> None:
    studio = _studio(engine, home, similarity, _fal(fake))
    studio.create("alice", "grace", GRACE, "a woman in a naval uniform")
    made = studio.variations(
        "alice", "grace", ["facing the camera", "seen from behind"], ["proud"], ["harbour"]
    )

    by_pose = {v.pose: v for v in made}
    assert set(by_pose) == {"facing the camera", "seen from behind"}
    front, back = by_pose["facing the camera"], by_pose["seen from behind"]
    assert front.similarity is not None and front.similarity >= CONSISTENCY_THRESHOLD
    assert not front.flagged and front.measure == "dlib-resnet-face-128d"
    assert back.similarity is None and back.flagged  # the fake drew no face from behind
    for v in made:
        assert (v.emotion, v.background, v.kind) == ("proud", "harbour", "variation")
        with Image.open(home / v.file) as img:
            assert img.size == (1080, 1920)

    submits = fake.submits()
    assert [s.path for s in submits] == ["/fal-ai/flux-pulid"] * 2
    assert all(s.body["reference_image_url"].startswith("data:image/png") for s in submits)
    assert "naval uniform" in submits[0].body["prompt"]
    ledger = topic_costs(engine, "")
    assert [(c.provider, c.model, c.stage) for c in ledger] == [
        ("fal", "fal-ai/flux-pulid", "character_variations")
    ] * 2
    assert [r.id for r in studio.images("alice", "grace")] == [v.id for v in made]

    # Again: same pictures, nothing paid, rows replaced rather than added.
    again = studio.variations(
        "alice", "grace", ["facing the camera", "seen from behind"], ["proud"], ["harbour"]
    )
    assert len(fake.submits()) == 2 and len(topic_costs(engine, "")) == 2
    assert len(studio.images("alice", "grace")) == len(again) == 2


def test_offline_variations_composite_the_reference_and_say_so(
    engine: sa.Engine, home: Path, similarity: FaceSimilarity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    studio = _studio(engine, home, similarity, FalImages())
    studio.create("alice", "grace", GRACE)
    [made] = studio.variations("alice", "grace", ["waving"], ["happy"], ["beach"])
    assert made.measure == "offline-composite:dlib-resnet-face-128d"
    assert made.similarity is not None and made.similarity >= CONSISTENCY_THRESHOLD
    assert not made.flagged
    assert topic_costs(engine, "") == []


def test_owners_never_see_each_others_characters(
    engine: sa.Engine, home: Path, similarity: FaceSimilarity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    studio = _studio(engine, home, similarity)
    alice = studio.create("alice", "grace", GRACE, "alice's grace")
    studio.variations("alice", "grace", ["waving"], [], [])

    assert studio.list("bob") == []
    for attempt in (
        lambda: studio.get("bob", "grace"),
        lambda: studio.delete("bob", "grace"),
        lambda: studio.variations("bob", "grace", ["x"], [], []),
        lambda: studio.images("bob", "grace"),
    ):
        with pytest.raises(CharacterNotFoundError, match="owner 'bob' has no character 'grace'"):
            attempt()

    bob = studio.create("bob", "grace", GRACE, "bob's grace")
    assert bob.id != alice.id and studio.images("bob", "grace") == []
    assert studio.reference(bob) != studio.reference(alice)
    studio.delete("alice", "grace")
    assert studio.list("alice") == []
    assert not (home / "owners" / "alice" / "characters" / "grace").exists()
    assert [c.description for c in studio.list("bob")] == ["bob's grace"]
    assert studio.reference(bob).exists()

    # Owners whose names slug alike still get folders of their own.
    ann, ann_b = studio.create("Ann B", "grace", GRACE), studio.create("ann-b", "grace", GRACE)
    assert (ann.owner, ann_b.owner) == ("Ann B", "ann-b")
    assert studio.reference(ann) != studio.reference(ann_b)
    assert [c.owner for c in studio.list("Ann B")] == ["Ann B"]


def test_combinations_are_the_product_without_blanks_or_repeats() -> None:
    assert combinations(["a", "b", "a", " "], ["x"], []) == [("a", "x", ""), ("b", "x", "")]
    assert len(combinations(["a", "b"], ["x", "y"], ["p", "q"])) == 8


def test_the_characters_command(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    parser = argparse.ArgumentParser(prog="factory")
    characters_cli.register(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return args.func(args)

    assert run("characters", "add", "grace", str(GRACE), "--owner", "alice",
               "--description", "a naval officer") == 0  # fmt: skip
    assert run("characters", "add", "grace", str(GRACE), "--owner", "alice") == 2
    assert "already has a character" in capsys.readouterr().err
    assert run("characters", "list", "--owner", "alice", "--json") == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["name"], listed["status"]) == ("grace", "ready")
    assert run("characters", "variations", "grace", "--owner", "alice", "--poses", "waving",
               "--emotions", "happy", "--backgrounds", "office") == 0  # fmt: skip
    assert "variations: 1 made, 0 flagged" in capsys.readouterr().out
    assert run("characters", "delete", "grace", "--owner", "bob") == 2
    assert "owner 'bob' has no character 'grace'" in capsys.readouterr().err
    assert run("characters", "delete", "grace", "--owner", "alice") == 0
    assert run("characters", "list", "--owner", "alice") == 0
    assert "alice has no characters" in capsys.readouterr().out


# --- scene_images on a channel with a character ----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("online", [True, False], ids=["fal", "offline"])
def test_scene_images_show_the_channel_character(
    online: bool, fake: FakeFal, similarity: FaceSimilarity, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not online:
        monkeypatch.delenv("FAL_KEY")
    home = MediaStore().root  # conftest's FACTORY_HOME: the asset's ledger lives there
    engine = project_engine(home)
    CharacterStudio(engine, home, similarity).create("alice", "grace", GRACE, "a naval officer")
    channel = home / "channels" / "gracechan"
    channel.mkdir(parents=True)
    images = {"chain": ["fal", "procedural"], "character": "grace"}
    (channel / "channel.yaml").write_text(
        yaml.safe_dump({"owner": "alice", "providers": {"images": images}}), encoding="utf-8"
    )
    request = make_request("gracechan", "Who wrote the first compiler", duration_s=15)
    MediaStore().save_request(request)
    resources = {**offline_resources(), "fal": _fal(fake), "face_similarity": similarity}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(topics.name, [request.key])
        result = dg.materialize(
            [script, voiceover, scene_images], partition_key=request.key,
            resources=resources, instance=instance, run_config=QUIET,
        )  # fmt: skip
    assert result.success
    [event] = result.asset_materializations_for_node("scene_images")
    meta = event.metadata
    pictures = SceneImages.model_validate_json(
        (home / "topics" / request.key / "scene_images.json").read_text()
    )
    expected = "fal:fal-ai/flux-pulid" if online else "procedural"
    assert {p.source for p in pictures.images} == {expected}
    assert meta["character"].value == "grace"
    assert meta["character_similarity_min"].value >= CONSISTENCY_THRESHOLD
    assert meta["flagged_scenes"].value == []
    rows = CharacterStudio(engine, home, similarity).images("alice", "grace", kind="scene")
    assert len(rows) == len(pictures.images)
    assert {r.topic_key for r in rows} == {request.key}
    offline_measure = "offline-composite:dlib-resnet-face-128d"
    assert {r.measure for r in rows} == {"dlib-resnet-face-128d" if online else offline_measure}
    if online:
        assert all("reference_image_url" in s.body for s in fake.submits())
        assert len(topic_costs(engine, request.key)) == len(pictures.images)
    else:
        assert "FAL_KEY is not set" in meta["fallbacks"].value[0]["reason"]
