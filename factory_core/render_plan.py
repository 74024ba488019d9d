"""The render plan: everything a renderer needs to draw a short, as plain data.

Pure: built from the scene spans, the channel's style and brand kit, testable without ffmpeg.
Both backends (ffmpeg, moviepy) render the same plan. Time is counted in frames so scenes tile
the narration exactly: scene i owns frames [boundary_i, boundary_i+1); a transition into scene
i+1 plays over its first frames while scene i runs on for the same number of frames.
"""

from __future__ import annotations

import itertools
from enum import StrEnum

from pydantic import BaseModel, Field, computed_field, model_validator

FPS = 30
# Scenes are scaled this much larger than the frame so a pan or zoom has room to move.
MOTION_OVERSCAN = 1.12
TRANSITION_S = 0.4
MAX_BUMPER_S = 2.0
LOUDNESS_TARGET_LUFS = -14.0
# The limiter's sample-peak ceiling. AAC's inter-sample peaks overshoot it by up to about 0.8 dB,
# so -2.0 lands the encoded master under the -1.2 dBTP aim in one AAC pass: at -1.5, six of ten
# voice-only masters needed a second encode (measured on ten topics; -1.8 still left 0.5 dB).
TRUE_PEAK_LIMIT_DB = -2.0


class Aspect(StrEnum):
    PORTRAIT = "9:16"
    SQUARE = "1:1"
    LANDSCAPE = "16:9"

    def size(self) -> tuple[int, int]:
        return {"9:16": (1080, 1920), "1:1": (1080, 1080), "16:9": (1920, 1080)}[self.value]

    def file_name(self, stem: str, suffix: str, primary: bool) -> str:
        """`video.mp4` for a channel's main aspect, `video_16x9.mp4` for the others."""
        return f"{stem}{suffix}" if primary else f"{stem}_{self.value.replace(':', 'x')}{suffix}"


class Motion(StrEnum):
    ZOOM_IN = "zoom_in"
    PAN_UP = "pan_up"
    PAN_LEFT = "pan_left"
    ZOOM_OUT = "zoom_out"
    PAN_DOWN = "pan_down"
    PAN_RIGHT = "pan_right"


class Transition(StrEnum):
    CROSSFADE = "fade"
    SLIDE_LEFT = "slideleft"
    SLIDE_UP = "slideup"
    WIPE_LEFT = "wipeleft"
    WIPE_RIGHT = "wiperight"
    BRAND_COLOUR = "brand_colour"  # fade out to the brand colour, fade in from it


# Transitions by channel style, used in turn; unknown styles get the explainer set.
STYLE_TRANSITIONS: dict[str, tuple[Transition, ...]] = {
    "explainer": (Transition.CROSSFADE, Transition.WIPE_LEFT, Transition.CROSSFADE,
                  Transition.SLIDE_UP),
    "energetic": (Transition.SLIDE_LEFT, Transition.WIPE_RIGHT, Transition.SLIDE_UP,
                  Transition.BRAND_COLOUR),
    "calm": (Transition.CROSSFADE, Transition.BRAND_COLOUR),
    "story": (Transition.BRAND_COLOUR, Transition.CROSSFADE, Transition.SLIDE_LEFT),
}  # fmt: skip


class Corner(StrEnum):
    TOP_LEFT = "top_left"
    TOP_RIGHT = "top_right"
    BOTTOM_LEFT = "bottom_left"
    BOTTOM_RIGHT = "bottom_right"


class Clip(BaseModel):
    image_file: str
    start: float
    end: float
    motion: Motion
    transition_in: Transition | None = Field(None, description="None for the first scene.")


class Overlay(BaseModel):
    """A logo watermark drawn over the scenes (not over intro and outro)."""

    image_file: str
    corner: Corner = Corner.TOP_RIGHT
    opacity: float = Field(0.8, ge=0.05, le=1.0)
    width_fraction: float = Field(0.16, ge=0.03, le=0.5)
    margin_fraction: float = Field(0.04, ge=0.0, le=0.2)


class Bumper(BaseModel):
    """An intro or outro from the brand kit: a picture or a short clip, at most 2 s."""

    file: str
    is_video: bool
    duration_s: float = Field(1.5, gt=0.2, le=MAX_BUMPER_S)


class EncoderSettings(BaseModel):
    preset: str = "veryfast"
    # Measured on a 20 s short (2 cores): veryfast 8.2 s; with diamond search and one subpel
    # pass 5.9 s at the same size and SSIM (the motion is slow, global pans and zooms); with one
    # B-frame instead of three 5.0 s, 10% larger, same SSIM. superfast: 5.3 s but 70% larger.
    # On the 30 s bench plan (SSIM against a crf 10 `medium` reference): no B-frames, no
    # weighted prediction, a 5-frame lookahead and 16x16 partitions only took 13% less CPU
    # for 5% more bytes (SSIM 0.9965 against 0.9971). CAVLC instead of CABAC saved 3% more CPU
    # for 17% more bytes: not taken.
    x264_params: str = "me=dia:subme=1:bframes=0:weightp=0:rc-lookahead=5:partitions=none:8x8dct=0"
    crf: int = Field(21, ge=0, le=51)
    audio_bitrate: str = "160k"
    gop: int = 60


class RenderPlan(BaseModel):
    aspect: Aspect = Aspect.PORTRAIT
    width: int = 1080
    height: int = 1920
    fps: int = FPS
    duration_s: float = Field(description="The narration part: scenes tile exactly this long.")
    clips: list[Clip]
    transition_s: float = TRANSITION_S
    brand_colour: str = "#14213D"
    audio_file: str
    captions_file: str | None
    fonts_dir: str | None
    overlay: Overlay | None = None
    intro: Bumper | None = None
    outro: Bumper | None = None
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)

    @model_validator(mode="after")
    def _size_matches_aspect(self) -> RenderPlan:
        if (self.width, self.height) != self.aspect.size():
            raise ValueError(f"{self.width}x{self.height} is not the {self.aspect} size")
        return self

    @property
    def intro_s(self) -> float:
        return self.intro.duration_s if self.intro else 0.0

    @property
    def outro_s(self) -> float:
        return self.outro.duration_s if self.outro else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_s(self) -> float:
        return round(self.intro_s + self.duration_s + self.outro_s, 3)


class AudioMixPlan(BaseModel):
    voice_file: str
    music_file: str | None
    duration_s: float = Field(description="Narration part, voice starts at lead_in_s.")
    lead_in_s: float = Field(0.0, description="Intro length: the voice waits for it.")
    tail_s: float = Field(0.0, description="Outro length: music plays on under it.")
    music_volume_db: float = -20.0
    fade_s: float = 0.05

    @property
    def total_s(self) -> float:
        return self.lead_in_s + self.duration_s + self.tail_s


def motions_for(n: int, seed: int = 0) -> list[Motion]:
    """Zooms and pans in varied directions, never the same move twice in a row."""
    cycle = list(Motion)
    return [cycle[(seed + i) % len(cycle)] for i in range(n)]


def transitions_for(n: int, style: str) -> list[Transition | None]:
    cycle = STYLE_TRANSITIONS.get(style.casefold(), STYLE_TRANSITIONS["explainer"])
    return [None] + [cycle[i % len(cycle)] for i in range(n - 1)]


def build_render_plan(
    *,
    images: list[tuple[str, float, float]],
    duration_s: float,
    audio_file: str,
    captions_file: str | None,
    fonts_dir: str | None,
    seed: int = 0,
    style: str = "explainer",
    aspect: Aspect = Aspect.PORTRAIT,
    brand_colour: str = "#14213D",
    overlay: Overlay | None = None,
    intro: Bumper | None = None,
    outro: Bumper | None = None,
) -> RenderPlan:
    motions = motions_for(len(images), seed)
    transitions = transitions_for(len(images), style)
    clips = [
        Clip(image_file=path, start=start, end=end, motion=motion, transition_in=transition)
        for (path, start, end), motion, transition in zip(images, motions, transitions, strict=True)
    ]
    width, height = aspect.size()
    return RenderPlan(
        aspect=aspect,
        width=width,
        height=height,
        duration_s=duration_s,
        clips=clips,
        brand_colour=brand_colour,
        audio_file=audio_file,
        captions_file=captions_file,
        fonts_dir=fonts_dir,
        overlay=overlay,
        intro=intro,
        outro=outro,
    )


# --- frame accounting, shared by both backends --------------------------------------------------


class ClipFrames(BaseModel):
    """One scene in frames: it owns [start, start+own); it renders own+tail frames."""

    start: int
    own: int
    head: int = Field(description="Frames at its start that the incoming transition covers.")
    tail: int = Field(description="Extra frames past its span that the next transition uses.")

    @property
    def rendered(self) -> int:
        return self.own + self.tail


def frame_layout(plan: RenderPlan) -> list[ClipFrames]:
    boundaries = [round(c.start * plan.fps) for c in plan.clips] + [
        round(plan.duration_s * plan.fps)
    ]
    boundaries[0] = 0
    own = [max(1, b - a) for a, b in itertools.pairwise(boundaries)]
    wanted = round(plan.transition_s * plan.fps)
    # A transition never takes more than half of either scene it joins.
    joins = [max(0, min(wanted, own[i] // 2, own[i + 1] // 2)) for i in range(len(own) - 1)]
    return [
        ClipFrames(
            start=boundaries[i],
            own=own[i],
            head=joins[i - 1] if i > 0 else 0,
            tail=joins[i] if i < len(joins) else 0,
        )
        for i in range(len(own))
    ]


def clip_frames(plan: RenderPlan) -> list[int]:
    """Frames each scene renders: its own span plus the tail the next transition blends away."""
    return [f.rendered for f in frame_layout(plan)]


def motion_window(motion: Motion, progress: float) -> tuple[float, float, float]:
    """Where the frame sits in the overscanned picture at progress 0..1: (zoom, x, y).

    zoom is the picture's scale relative to the frame (1 = fills it, up to MOTION_OVERSCAN);
    x and y are the crop's position as fractions of the free room (0.5 = centred).
    """
    p = min(1.0, max(0.0, progress))
    big = MOTION_OVERSCAN
    if motion is Motion.ZOOM_IN:
        return 1 + (big - 1) * p, 0.5, 0.5
    if motion is Motion.ZOOM_OUT:
        return big - (big - 1) * p, 0.5, 0.5
    if motion is Motion.PAN_UP:
        return big, 0.5, 1 - p
    if motion is Motion.PAN_DOWN:
        return big, 0.5, p
    if motion is Motion.PAN_LEFT:
        return big, 1 - p, 0.5
    return big, p, 0.5


def overlay_box(plan: RenderPlan, logo_w: int, logo_h: int) -> tuple[int, int, int, int]:
    """Logo size and position in the frame: (width, height, x, y)."""
    assert plan.overlay is not None
    width = even(plan.width * plan.overlay.width_fraction)
    height = even(width * logo_h / max(1, logo_w))
    margin = round(min(plan.width, plan.height) * plan.overlay.margin_fraction)
    left = plan.overlay.corner in (Corner.TOP_LEFT, Corner.BOTTOM_LEFT)
    top = plan.overlay.corner in (Corner.TOP_LEFT, Corner.TOP_RIGHT)
    x = margin if left else plan.width - width - margin
    # Clear of the platforms' top bar and bottom band in portrait.
    y = margin + (round(plan.height * 0.06) if top else 0)
    if not top:
        y = plan.height - height - margin - round(plan.height * 0.2)
    return width, height, x, y


def even(value: float) -> int:
    return int(round(value / 2) * 2)
