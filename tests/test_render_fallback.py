"""When the bundled ffmpeg crashes on a plan even after its retries, the topic is still made:
the moviepy backend draws that plan, and the video's metadata says so."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from factory_assets.definitions import build_definitions
from factory_assets.partitions import topics
from factory_core import render_plan as rp
from factory_resources.ffmpeg import FfmpegRenderer, RenderError, probe
from factory_resources.store import MediaStore

from .conftest import QUIET, make_request

pytestmark = pytest.mark.slow


class CrashingFfmpeg(FfmpegRenderer):
    """Our ffmpeg renderer whose video pass dies on a signal, as the static build does on some
    filtergraphs (the audio master still runs for real)."""

    def render(self, plan: rp.RenderPlan, work_dir: Path, output: Path) -> float:
        raise RenderError("video render failed (exit -11): ", crashed=True)


def test_a_crashing_ffmpeg_falls_back_to_the_moviepy_backend(tmp_path: Path) -> None:
    home = tmp_path / "home"
    request = make_request("demo", "Why bread rises", duration_s=15)
    MediaStore(home=str(home)).save_request(request)
    defs = build_definitions(home=str(home), overrides={"renderer": CrashingFfmpeg()})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(topics.name, [request.key])
        result = defs.resolve_job_def("produce_topic").execute_in_process(
            partition_key=request.key, instance=instance, run_config=QUIET
        )
    assert result.success
    meta = result.asset_materializations_for_node("video")[0].metadata
    assert meta["renderer_fallbacks"].value == "9:16"
    info = probe(home / "topics" / request.key / "video.mp4")
    assert (info.width, info.height) == (1080, 1920) and info.duration_s > 10
