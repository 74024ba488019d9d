"""How fast the channel's narration will be spoken: the script stage sizes its words with it,
and `factory estimate` counts the characters the same way.

The offline voice is measured exactly (it runs here, for free). A paid voice is not run to
measure a draft (that would bill the narration twice): its pace is learned from its own audio
(a calibration phrase when cloned, then every narration) and stored with the studio voice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factory_core.models import ChannelProfile
from factory_core.timing import END_TAIL_S, estimate_duration
from factory_resources.project_db import project_engine
from factory_resources.voice_studio import VoiceRecord, find_voice

# ElevenLabs accepts speed 0.7..1.2; the channel's voice_speed (0.7..1.4) scales the voice's own.
ELEVENLABS_SPEED = (0.7, 1.2)


def elevenlabs_speed(voice_speed_setting: float | None, channel_speed: float) -> float:
    speed = float(voice_speed_setting or 1.0) * channel_speed
    return round(min(max(speed, ELEVENLABS_SPEED[0]), ELEVENLABS_SPEED[1]), 3)


@dataclass(frozen=True)
class NarrationPace:
    rate: float  # letters per second of speech
    voice: str  # whose pace: "offline" or "elevenlabs:<studio voice>"
    measure: Callable[[list[str]], float] | None = None  # exact seconds, when free to run

    def seconds(self, sentences: list[str]) -> float:
        """Seconds of video these sentences make, end tail included."""
        if self.measure is not None:
            return self.measure(sentences) + END_TAIL_S
        return estimate_duration(sentences, self.rate)


def _ready_voice(home: Path, owner: str, voice_name: str | None) -> VoiceRecord | None:
    record = find_voice(project_engine(home), owner, voice_name)
    return record if record is not None and record.status == "ready" else None


def studio_pace(home: Path, owner: str, voice_name: str | None) -> tuple[float, float] | None:
    """(letters per second at speed 1, the voice's own speed setting) of a ready ElevenLabs
    studio voice whose pace is known, else None."""
    record = _ready_voice(home, owner, voice_name)
    if record is None or record.provider != "elevenlabs" or not record.chars_per_second:
        return None
    return record.chars_per_second, float(record.settings.get("speed") or 1.0)


def offline_profile(home: Path, owner: str, voice_name: str | None) -> tuple[float, float] | None:
    """(speed, pitch in semitones) of a ready offline studio voice (`factory voices
    add-offline`), which the offline voice then speaks with; else None."""
    record = _ready_voice(home, owner, voice_name)
    if record is None or record.provider != "offline":
        return None
    return float(record.settings.get("speed") or 1.0), float(record.settings.get("pitch") or 0.0)


def offline_speed(channel: ChannelProfile, home: Path) -> float:
    """The offline voice's speed for this channel: its own, times its studio profile's."""
    profile = offline_profile(home, channel.owner, channel.providers.voice.voice)
    return channel.voice_speed * (profile[0] if profile else 1.0)


def narration_pace(
    channel: ChannelProfile,
    home: Path,
    offline_rate: float,
    offline_measure: Callable[[list[str]], float] | None,
    elevenlabs_usable: bool,
) -> NarrationPace:
    """The pace of the voice that will speak: the first of the channel's voice chain that can,
    as the voiceover stage will choose it."""
    settings = channel.providers.voice
    for entry in settings.chain:
        if entry == "offline":
            break
        if entry == "elevenlabs" and elevenlabs_usable:
            known = studio_pace(home, channel.owner, settings.voice)
            if known is not None:
                rate_at_1, own_speed = known
                speed = elevenlabs_speed(own_speed, channel.voice_speed)
                return NarrationPace(rate=rate_at_1 * speed, voice=f"elevenlabs:{settings.voice}")
    return NarrationPace(rate=offline_rate, voice="offline", measure=offline_measure)
