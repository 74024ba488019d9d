"""A channel with its own look through the whole graph: two aspects, logo, intro picture, outro
clip, upper-case serif captions in the middle, an energetic style, covers taken from a frame.
Checks that every aspect's video passes the spec check and that the settings took effect.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import dagster as dg
import pysubs2
import pytest

from factory_core.render_plan import RenderPlan, Transition
from factory_resources.ffmpeg import ffmpeg_exe, probe

from .conftest import make_request, produce

pytestmark = pytest.mark.slow

CHANNEL_YAML = """
style: energetic
aspects: ["9:16", "1:1"]
captions: {uppercase: true, position: middle, font: "DejaVu Serif"}
brand: {primary: "#5B2A86", secondary: "#E0479E", accent: "#7AE7C7"}
logo_corner: top_left
bumper_s: 1.0
cover_from: frame
"""


def test_branded_channel_renders_every_aspect_to_spec(tmp_path: Path) -> None:
    home = tmp_path / "home"
    brand = home / "channels" / "brandy" / "brand"
    brand.mkdir(parents=True)
    (brand.parent / "channel.yaml").write_text(CHANNEL_YAML, encoding="utf-8")
    ff = ffmpeg_exe()
    for args in (
        ["-f", "lavfi", "-i", "color=c=orange:s=300x120", "-frames:v", "1", str(brand / "logo.png")],
        ["-f", "lavfi", "-i", "color=c=purple:s=1080x1920", "-frames:v", "1",
         str(brand / "intro.png")],
        ["-f", "lavfi", "-i", "testsrc=s=640x360:r=25:d=2", "-pix_fmt", "yuv420p",
         str(brand / "outro.mp4")],
    ):  # fmt: skip
        subprocess.run([ff, "-v", "error", *args], check=True)
    request = make_request("brandy", "The secret life of octopuses", duration_s=15)
    with dg.instance_for_test() as instance:
        result = produce(home, instance, [request])[request.key]
        failed = [(e.check_name, e.metadata["problems"].value)
                  for e in result.get_asset_check_evaluations() if not e.passed]  # fmt: skip
        assert result.success and failed == []
    folder = home / "topics" / request.key
    assert (probe(folder / "video.mp4").width, probe(folder / "video.mp4").height) == (1080, 1920)
    assert (probe(folder / "video_1x1.mp4").width, probe(folder / "video_1x1.mp4").height) == (
        1080,
        1080,
    )
    plan = RenderPlan.model_validate_json((folder / "render_plan.json").read_text())
    assert plan.intro and plan.outro and plan.outro.is_video and plan.overlay
    assert plan.total_s == pytest.approx(plan.duration_s + 2.0)
    assert Transition.BRAND_COLOUR in [c.transition_in for c in plan.clips] or len(plan.clips) < 5
    ass = pysubs2.load(str(folder / "captions.ass"), encoding="utf-8")
    assert ass.styles["Caption"].fontname == "DejaVu Serif"
    captions = [e.plaintext for e in ass if e.style == "Caption"]
    assert captions and all(text == text.upper() for text in captions)
    assert ass.styles["Handle"].alignment == pysubs2.Alignment.TOP_RIGHT  # clear of the logo
    assert (folder / "captions_1x1.ass").exists()
    assert (folder / "cover_frame.png").exists()  # the cover came from a frame of the video
    meta = result.asset_materializations_for_node("video")[0].metadata
    assert meta["branding"].value == "logo, intro, outro"
    assert meta["files"].value == "video.mp4, video_1x1.mp4"
