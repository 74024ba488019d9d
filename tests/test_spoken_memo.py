"""The voiceover reuses the speech the script stage measured, in the same process."""

from __future__ import annotations

from pathlib import Path

from factory_core.models import Language
from factory_resources import voices
from factory_resources.voices import OfflineVoice, forget_spoken

SENTENCES = ["Octopuses have three hearts.", "Two of them stop when they swim."]


def test_the_narration_is_exactly_as_long_as_the_script_was_measured(tmp_path: Path) -> None:
    forget_spoken()
    voice = OfflineVoice()
    measured = voice.measure_seconds(SENTENCES, Language.EN, 1.0)
    remembered = len(voices._SPOKEN_MEMO)
    spoken = voice.synthesize(SENTENCES, Language.EN, 1.0, tmp_path / "voice.wav")
    assert remembered == len(SENTENCES)
    assert len(voices._SPOKEN_MEMO) == remembered  # nothing spoken twice
    assert abs(spoken.duration_s - measured) < 1e-3
    assert [w.word for w in spoken.words][:3] == ["Octopuses", "have", "three"]


def test_another_speed_is_spoken_afresh_and_forgetting_empties_the_memo(tmp_path: Path) -> None:
    forget_spoken()
    voice = OfflineVoice()
    voice.measure_seconds(SENTENCES[:1], Language.EN, 1.0)
    voice.measure_seconds(SENTENCES[:1], Language.EN, 1.25)
    assert len(voices._SPOKEN_MEMO) == 2
    forget_spoken()
    assert not voices._SPOKEN_MEMO
    assert voice.synthesize(SENTENCES[:1], Language.EN, 1.0, tmp_path / "v.wav").duration_s > 0.5
