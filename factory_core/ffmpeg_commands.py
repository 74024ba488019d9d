"""The ffmpeg command lines that carry out a render plan. Pure: builds argument lists only.

Two passes, measured on 2 cores for a 30 s 1080x1920 short:
1. audio: voice + music bed with sidechain ducking, then a measured gain and a peak limiter
   (about a second);
2. video: one filtergraph. Each scene picture is a single decoded frame, scaled once to the size
   its motion needs, repeated in memory by `loop` (an image input with `-loop 1` is decoded again
   for every frame), moved by `crop` (pans) or a per-frame `scale` (zooms). Transitions are
   blended only over their own few frames: an `xfade` over whole streams passes every frame of
   the video through every join, which took 2.7 s of the 3 s filter time; cutting each scene
   into head, body and tail and blending only the tails took 0.25 s.

Each scene's moving frames are copied into their own buffers (`copy`): frames cropped out of
the looped picture crashed this ffmpeg build (SIGSEGV in a frame copy inside overlay/xfade) in
5 to 50% of captioned renders; with the copy, none in 34. Each scene is made as up to three
pieces, each its own loop of the one decoded picture (see scene_pieces), so frames are made as
the output reaches them.
"""

from __future__ import annotations

from factory_core.render_plan import (
    MOTION_OVERSCAN,
    TRUE_PEAK_LIMIT_DB,
    AudioMixPlan,
    Bumper,
    EncoderSettings,
    Motion,
    RenderPlan,
    Transition,
    even,
    frame_layout,
    overlay_box,
)

_QUIET = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]


def escape_filter_path(path: str) -> str:
    """Escape a file path for a filter option inside a filtergraph (two levels of escaping).

    Not to be wrapped in quotes: inside quotes ffmpeg keeps the backslashes of the escapes.
    """
    level1 = path.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")
    return "".join("\\" + ch if ch in "\\'[],;" else ch for ch in level1)


def _colour(hex_colour: str) -> str:
    return "0x" + hex_colour.lstrip("#").upper()


def _motion_filters(motion: Motion, frames: int, width: int, height: int, offset: int = 0) -> str:
    """Pans move a fixed-size crop (cheap); zooms rescale each frame, then crop the centre.

    `frames` is the scene's whole length; `offset` is where this piece starts within it.
    """
    p = f"((n+{offset})/{max(1, frames - 1)})"
    span = MOTION_OVERSCAN - 1
    if motion in (Motion.ZOOM_IN, Motion.ZOOM_OUT):
        zoom = (
            f"(1+{span:.4f}*{p})"
            if motion is Motion.ZOOM_IN
            else f"({MOTION_OVERSCAN}-{span:.4f}*{p})"
        )
        return (
            f"scale=w='2*trunc({width}*{zoom}/2)':h='2*trunc({height}*{zoom}/2)'"
            # Rounding the zoomed size changes the pixel aspect a hair; concat needs it square.
            f":eval=frame:flags=bilinear,crop={width}:{height},setsar=1"
        )
    x, y = "(iw-ow)/2", "(ih-oh)/2"
    if motion is Motion.PAN_UP:
        y = f"(ih-oh)*(1-{p})"
    elif motion is Motion.PAN_DOWN:
        y = f"(ih-oh)*{p}"
    elif motion is Motion.PAN_LEFT:
        x = f"(iw-ow)*(1-{p})"
    else:
        x = f"(iw-ow)*{p}"
    return f"crop={width}:{height}:x='{x}':y='{y}'"


def _picture(input_index: int, plan: RenderPlan, overscan: bool) -> str:
    """A picture input decoded and scaled once to the frame (or the overscan its motion needs).

    A portrait picture in a landscape frame would lose its top and bottom to a crop, so it is
    shown whole over a blurred, filled copy of itself; other frames are filled by cropping.
    """
    w = even(plan.width * MOTION_OVERSCAN) if overscan else plan.width
    h = even(plan.height * MOTION_OVERSCAN) if overscan else plan.height
    source = f"[{input_index}:v]"
    fill = f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,crop={w}:{h}"
    if plan.width > plan.height:
        i = input_index
        picture = (
            f"{source}split=2[bg{i}][fg{i}];[bg{i}]scale={w // 8}:{h // 8}:"
            f"force_original_aspect_ratio=increase,crop={w // 8}:{h // 8},boxblur=6:2,"
            f"scale={w}:{h},eq=brightness=-0.12[bgb{i}];"
            f"[fg{i}]scale=-2:{h}:flags=bicubic[fgs{i}];"
            f"[bgb{i}][fgs{i}]overlay=(W-w)/2:0"
        )
    else:
        picture = f"{source}{fill}"
    return f"{picture},format=yuv420p,setsar=1"


def _repeat(frames: int, fps: int) -> str:
    """One frame as `frames` identical frames, repeated in memory (an image input with `-loop 1`
    is decoded again for every frame)."""
    # A picture input's time base is 1/25: renumbering in it would round 30 fps stamps onto
    # each other. In 1/fps every frame is exactly one tick.
    return f"loop=loop={frames - 1}:size=1:start=0,settb=1/{fps},setpts=N"


def _still(input_index: int, frames: int, plan: RenderPlan, overscan: bool) -> str:
    """A picture input as `frames` identical frames."""
    return f"{_picture(input_index, plan, overscan)},{_repeat(frames, plan.fps)}"


def _bumper(input_index: int, bumper: Bumper, plan: RenderPlan, label: str, fade: str) -> str:
    frames = round(bumper.duration_s * plan.fps)
    if bumper.is_video:
        chain = (
            f"[{input_index}:v]scale={plan.width}:{plan.height}:force_original_aspect_ratio=increase,"
            f"crop={plan.width}:{plan.height},fps={plan.fps},format=yuv420p,setsar=1,"
            f"tpad=stop_mode=clone:stop_duration={bumper.duration_s},"
            f"trim=end_frame={frames},setpts=PTS-STARTPTS"
        )
    else:
        chain = _still(input_index, frames, plan, overscan=False)
    n = min(8, frames // 3)
    start = 0 if fade == "in" else frames - n
    return f"{chain},fade=t={fade}:s={start}:n={n}:c={_colour(plan.brand_colour)}[{label}]"


def scene_pieces(plan: RenderPlan) -> list[tuple[int, str, int, int]]:
    """Each scene as up to three pieces (h: blended in, b: body, t: blended out), as
    (scene index, piece, first frame, end frame), in scene order.

    The scene's picture is decoded and scaled once, then split as a single frame; each piece
    repeats it with its own loop, so a piece's frames are made only when the output reaches
    them. Splitting after the loop instead made the body's frames while the head was being
    blended; they waited in memory (3 GB for a 30 s short once frames had their own buffers).
    """
    return [
        (i, name, a, b)
        for i, f in enumerate(frame_layout(plan))
        for name, a, b in (("h", 0, f.head), ("b", f.head, f.own), ("t", f.own, f.rendered))
        if b > a
    ]


def input_files(plan: RenderPlan) -> list[str]:
    """Inputs in graph order: scene pictures, logo, intro, outro, then the mastered audio."""
    files = [clip.image_file for clip in plan.clips]
    files += [plan.overlay.image_file] if plan.overlay else []
    files += [plan.intro.file] if plan.intro else []
    files += [plan.outro.file] if plan.outro else []
    return [*files, plan.audio_file]


def video_filtergraph(plan: RenderPlan, logo_size: tuple[int, int] = (1, 1)) -> str:
    layout = frame_layout(plan)
    n = len(plan.clips)
    pieces = scene_pieces(plan)
    parts: list[str] = []
    for i in range(n):
        names = [name for scene, name, _, _ in pieces if scene == i]
        outputs = "".join(f"[p{name}{i}]" for name in names)
        parts.append(f"{_picture(i, plan, overscan=True)},split={len(names)}{outputs}")
    for i, name, a, b in pieces:
        motion = _motion_filters(
            plan.clips[i].motion, layout[i].rendered, plan.width, plan.height, offset=a
        )
        parts.append(f"[p{name}{i}]{_repeat(b - a, plan.fps)},{motion},copy[{name}{i}]")
    segments: list[str] = []
    for i, frames in enumerate(layout):
        segments.append(f"[b{i}]")
        if i + 1 < n and frames.tail > 0:
            parts.append(_join(i, frames.tail, plan.clips[i + 1].transition_in, plan))
            segments.append(f"[x{i}]")
    current = "body"
    # Every frame is exactly one frame long by construction; renumbering the timestamps keeps
    # the captions on time and stops the encoder dropping frames stamped too close together.
    renumber = f"settb=1/{plan.fps},setpts=N"
    if len(segments) == 1:
        parts.append(f"{segments[0]}{renumber}[{current}]")
    else:
        parts.append(f"{''.join(segments)}concat=n={len(segments)}:v=1:a=0,{renumber}[{current}]")

    if plan.captions_file:
        subtitle = f"ass=filename={escape_filter_path(plan.captions_file)}"
        if plan.fonts_dir:
            subtitle += f":fontsdir={escape_filter_path(plan.fonts_dir)}"
        parts.append(f"[{current}]{subtitle}[captioned]")
        current = "captioned"

    next_input = n
    if plan.overlay:
        width, height, x, y = overlay_box(plan, *logo_size)
        parts.append(
            f"[{next_input}:v]scale={width}:{height},format=rgba,"
            f"colorchannelmixer=aa={plan.overlay.opacity:.2f}[logo]"
        )
        parts.append(f"[{current}][logo]overlay=x={x}:y={y}:format=auto,format=yuv420p[branded]")
        current = "branded"
        next_input += 1

    sequence = []
    if plan.intro:
        parts.append(_bumper(next_input, plan.intro, plan, "intro", "in"))
        sequence.append("[intro]")
        next_input += 1
    sequence.append(f"[{current}]")
    if plan.outro:
        parts.append(_bumper(next_input, plan.outro, plan, "outro", "out"))
        sequence.append("[outro]")
    if len(sequence) > 1:
        parts.append(
            f"{''.join(sequence)}concat=n={len(sequence)}:v=1:a=0,{renumber},format=yuv420p[v]"
        )
    else:
        parts.append(f"[{current}]format=yuv420p[v]")
    return ";".join(parts)


def _join(i: int, frames: int, kind: Transition | None, plan: RenderPlan) -> str:
    """The transition from scene i to i+1, over `frames` frames."""
    if kind is Transition.BRAND_COLOUR:
        out_n = frames // 2
        in_n = frames - out_n
        colour = _colour(plan.brand_colour)
        return (
            f"[t{i}]fade=t=out:s=0:n={out_n}:c={colour},trim=end_frame={out_n}[xo{i}];"
            f"[h{i + 1}]trim=start_frame={out_n},setpts=PTS-STARTPTS,"
            f"fade=t=in:s=0:n={in_n}:c={colour}[xi{i}];"
            f"[xo{i}][xi{i}]concat=n=2:v=1:a=0[x{i}]"
        )
    # Blends are overlays (frame-synchronised, so every run gives the same frames). xfade was
    # tried first: it crashed this ffmpeg build (SIGSEGV inside its slice function) in about
    # half the renders that also burned captions, and lost frames depending on thread timing.
    n = frames
    step = f"(n+1)/{n}"  # 1/n .. 1 over the blend
    out = f"format=yuv420p,setsar=1,trim=end_frame={n}[x{i}]"
    if kind in (Transition.SLIDE_LEFT, Transition.SLIDE_UP):
        x, y = ("W-W*" + step, "0") if kind is Transition.SLIDE_LEFT else ("0", "H-H*" + step)
        return f"[t{i}][h{i + 1}]overlay=x='{x}':y='{y}':eval=frame:shortest=1,{out}"
    if kind in (Transition.WIPE_LEFT, Transition.WIPE_RIGHT):
        # A hard-edged mask drawn small and scaled up: the new scene is revealed column by
        # column without moving (the left wipe reveals from the right edge, like xfade's).
        side = f"gte(X/W,1-{step})" if kind is Transition.WIPE_LEFT else f"lte(X/W,{step})"
        mw, mh = even(plan.width / 8), even(plan.height / 8)
        return (
            f"color=c=black:s={mw}x{mh}:r={plan.fps}:d={n / plan.fps:.6f},format=gray,"
            f"geq=lum='255*{side.replace('(n+1)', '(N+1)')}',"
            f"scale={plan.width}:{plan.height}:flags=neighbor,trim=end_frame={n}[m{i}];"
            f"[h{i + 1}][m{i}]alphamerge[hm{i}];"
            f"[t{i}][hm{i}]overlay=shortest=1,{out}"
        )
    return (
        f"[h{i + 1}]format=yuva420p,fade=t=in:s=0:n={n}:alpha=1[ha{i}];"
        f"[t{i}][ha{i}]overlay=shortest=1,{out}"
    )


def video_args(plan: RenderPlan, output: str, logo_size: tuple[int, int] = (1, 1)) -> list[str]:
    # One filter thread: with slice threads this ffmpeg build crashed (SIGSEGV) in about one
    # landscape render in three, and on 2 cores the single thread was also 10% faster.
    args = [*_QUIET, "-filter_complex_threads", "1"]
    for path in input_files(plan)[:-1]:
        # A single frame per picture input: decoded once, repeated by the loop filter.
        args += ["-i", path]
    args += ["-i", plan.audio_file]
    audio_index = len(input_files(plan)) - 1
    args += ["-filter_complex", video_filtergraph(plan, logo_size)]
    args += ["-map", "[v]", "-map", f"{audio_index}:a"]
    args += encoder_args(plan.encoder, plan.fps)
    args += ["-c:a", "copy", "-t", f"{plan.total_s:.3f}", "-movflags", "+faststart", output]
    return args


def still_floor_args(image_file: str, plan: RenderPlan, output: str) -> list[str]:
    """The encoder floor: one still image encoded at the same size and settings, no filters."""
    frames = round(plan.total_s * plan.fps)
    return [
        *_QUIET, "-i", image_file,
        "-filter_complex",
        f"[0:v]scale={plan.width}:{plan.height},format=yuv420p,"
        f"loop=loop={frames - 1}:size=1:start=0,settb=1/{plan.fps},setpts=N[v]",
        "-map", "[v]", *encoder_args(plan.encoder, plan.fps), "-an", output,
    ]  # fmt: skip


def encoder_args(enc: EncoderSettings, fps: int) -> list[str]:
    args = [
        "-c:v", "libx264", "-preset", enc.preset, "-crf", str(enc.crf),
        "-profile:v", "high", "-pix_fmt", "yuv420p", "-r", str(fps),
        "-g", str(enc.gop), "-fps_mode", "cfr",
    ]  # fmt: skip
    if enc.x264_params:
        args += ["-x264-params", enc.x264_params]
    return args


def audio_mix_args(plan: AudioMixPlan, output_wav: str) -> list[str]:
    """Voice over a ducked music bed, as 48 kHz stereo PCM (loudness is set in the next pass)."""
    total = plan.total_s
    delay_ms = round(plan.lead_in_s * 1000)
    args = [*_QUIET, "-i", plan.voice_file]
    voice = (
        "[0:a]aformat=sample_rates=48000:channel_layouts=stereo,"
        + (f"adelay=delays={delay_ms}:all=1," if delay_ms else "")
        + f"apad,atrim=0:{total:.3f}[voice]"
    )
    if plan.music_file is None:
        graph = f"{voice};[voice]anull[mix]"
    else:
        args += ["-stream_loop", "-1", "-i", plan.music_file]
        graph = ";".join(
            [
                voice,
                "[voice]asplit=2[v_main][v_key]",
                f"[1:a]aformat=sample_rates=48000:channel_layouts=stereo,atrim=0:{total:.3f},"
                f"volume={plan.music_volume_db}dB,afade=t=in:d=0.8,"
                f"afade=t=out:st={max(0.0, total - 1.5):.3f}:d=1.5[music]",
                # Duck the music whenever the voice speaks; release slowly so it breathes back.
                "[music][v_key]sidechaincompress=threshold=0.02:ratio=10:attack=15:release=350"
                ":makeup=1[ducked]",
                "[v_main][ducked]amix=inputs=2:duration=first:normalize=0[mix]",
            ]
        )
    args += ["-filter_complex", graph, "-map", "[mix]", "-c:a", "pcm_s16le", output_wav]
    return args


def inspection_args(input_file: str, fps: int = 30) -> list[str]:
    """One decode of a finished video: frozen stretches, black stretches, loudness, true peak and
    the audio's sample count (for the audio/video length difference)."""
    return [
        "-hide_banner", "-nostdin", "-i", input_file,
        "-filter_complex",
        # A freeze is a picture that barely changes for 3 s; black means most pixels near black
        # for longer than the longest intended fade (0.3 s).
        "[0:v]freezedetect=n=0.001:d=3,blackdetect=d=0.3:pix_th=0.08[vo];"
        "[0:a]ebur128=peak=true:framelog=quiet,"
        "astats=measure_perchannel=none:measure_overall=Number_of_samples[ao]",
        "-map", "[vo]", "-map", "[ao]", "-f", "null", "-",
    ]  # fmt: skip


def loudness_args(input_file: str) -> list[str]:
    return [
        "-hide_banner", "-nostdin", "-i", input_file, "-map", "0:a",
        "-af", "ebur128=peak=true", "-f", "null", "-",
    ]  # fmt: skip


def _master_chain(gain_db: float, plan: AudioMixPlan, limit_db: float) -> str:
    limit = 10 ** (limit_db / 20)
    total = plan.total_s
    return (
        f"volume={gain_db:.2f}dB,"
        f"alimiter=limit={limit:.4f}:attack=1:release=50:level=false,"
        f"afade=t=in:d={plan.fade_s},afade=t=out:st={max(0.0, total - 0.3):.3f}:d=0.3"
    )


def audio_master_args(
    mix_wav: str,
    gain_db: float,
    plan: AudioMixPlan,
    output: str,
    limit_db: float = TRUE_PEAK_LIMIT_DB,
) -> list[str]:
    """A gain (measured to reach the loudness target), a peak limiter, short fades; AAC out."""
    return [
        *_QUIET, "-i", mix_wav,
        "-af", _master_chain(gain_db, plan, limit_db), "-ar", "48000", "-ac", "2",
        "-c:a", "aac", "-b:a", "160k", "-t", f"{plan.total_s:.3f}", output,
    ]  # fmt: skip


def audio_master_trial_args(
    mix_wav: str, gain_db: float, plan: AudioMixPlan, limit_db: float = TRUE_PEAK_LIMIT_DB
) -> list[str]:
    """The master's chain measured without encoding (ebur128 summary in the log): the AAC
    encode is nine tenths of a master pass, so the gain is settled on trials first."""
    return [
        "-hide_banner", "-nostdin", "-i", mix_wav,
        "-af", f"{_master_chain(gain_db, plan, limit_db)},ebur128=peak=true:framelog=quiet",
        "-t", f"{plan.total_s:.3f}", "-f", "null", "-",
    ]  # fmt: skip


def speech_band_args(input_file: str, output_wav: str) -> list[str]:
    """What whisper listens to (16 kHz mono PCM), kept to the speech band: below 120 Hz is the
    music bed's bass, above 7 kHz the recognizer does not use. `volumedetect` logs the mean
    level (read back to tell silence from quiet speech)."""
    return [
        "-hide_banner", "-nostdin", "-y", "-i", input_file, "-vn",
        "-af", "highpass=f=120,lowpass=f=7000,volumedetect",
        "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", output_wav,
    ]  # fmt: skip
