"""Quality gates as pure functions over measured facts; the asset checks feed them."""

from __future__ import annotations

from factory_core.models import Script
from factory_core.platforms import metadata_problems
from factory_core.render_plan import LOUDNESS_TARGET_LUFS

DURATION_TOLERANCE = 0.10
LOUDNESS_TOLERANCE_LU = 1.5
SILENT_BELOW_LUFS = -60.0
TRUE_PEAK_MAX_DBTP = -1.0
AV_GAP_MAX_S = 0.1


def video_problems(
    *,
    width: int | None,
    height: int | None,
    fps: float | None,
    video_codec: str | None,
    pix_fmt: str | None,
    audio_codec: str | None,
    duration_s: float,
    target_duration_s: float,
    integrated_lufs: float | None,
    moov_first: bool,
    expected_size: tuple[int, int] = (1080, 1920),
    true_peak_dbtp: float | None = None,
    audio_s: float | None = None,
    video_s: float | None = None,
    freezes: list[tuple[float, float]] = (),  # type: ignore[assignment]
    blacks: list[tuple[float, float]] = (),  # type: ignore[assignment]
) -> list[str]:
    problems = []
    if (width, height) != expected_size:
        problems.append(
            f"resolution {width}x{height}, expected {expected_size[0]}x{expected_size[1]}"
        )
    if fps is None or abs(fps - 30) > 0.01:
        problems.append(f"frame rate {fps}, expected 30")
    if video_codec != "h264" or pix_fmt != "yuv420p":
        problems.append(f"video {video_codec}/{pix_fmt}, expected h264/yuv420p")
    if audio_codec != "aac":
        problems.append(f"audio codec {audio_codec}, expected aac")
    if abs(duration_s - target_duration_s) > DURATION_TOLERANCE * target_duration_s:
        problems.append(
            f"duration {duration_s:.1f}s is more than {DURATION_TOLERANCE:.0%} from the "
            f"target {target_duration_s:.1f}s"
        )
    if integrated_lufs is None or integrated_lufs < SILENT_BELOW_LUFS:
        problems.append("audio is missing or silent")
    elif abs(integrated_lufs - LOUDNESS_TARGET_LUFS) > LOUDNESS_TOLERANCE_LU:
        problems.append(
            f"loudness {integrated_lufs:.1f} LUFS, expected {LOUDNESS_TARGET_LUFS} ± "
            f"{LOUDNESS_TOLERANCE_LU}"
        )
    if true_peak_dbtp is not None and true_peak_dbtp > TRUE_PEAK_MAX_DBTP:
        problems.append(f"true peak {true_peak_dbtp:.1f} dBTP, above {TRUE_PEAK_MAX_DBTP}")
    if audio_s is not None and video_s is not None and abs(audio_s - video_s) > AV_GAP_MAX_S:
        problems.append(f"audio {audio_s:.2f}s and video {video_s:.2f}s differ by more than 0.1s")
    problems.extend(
        f"picture frozen for {length:.1f}s from {start:.1f}s" for start, length in freezes
    )
    problems.extend(f"black for {length:.1f}s from {start:.1f}s" for start, length in blacks)
    if not moov_first:
        problems.append("moov atom is not at the start (no +faststart)")
    return problems


def script_problems(script: Script) -> list[str]:
    problems = []
    if not script.hook.strip():
        problems.append("no hook")
    if not script.call_to_action.strip() and script.source == "composer":
        problems.append("no call to action")
    if script.source == "composer" and not 3 <= len(script.body_points) <= 5:
        problems.append(f"{len(script.body_points)} body points, expected 3 to 5")
    if script.source == "composer" and not 4 <= len(script.scenes) <= 7:
        problems.append(f"{len(script.scenes)} scenes, expected 4 to 7")
    if abs(script.estimated_duration_s - script.target_duration_s) > (
        DURATION_TOLERANCE * script.target_duration_s
    ):
        problems.append(
            f"estimated {script.estimated_duration_s:.1f}s is outside the "
            f"{script.target_duration_s:.0f}s budget; give the topic a longer duration, the "
            "channel a faster voice, or a shorter script of your own"
        )
    problems.extend(metadata_problems(script.title, script.description, script.hashtags))
    return problems
