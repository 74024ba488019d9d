"""The offline script's refit to the voice's measured length (factory_assets.script._write_offline).

Covers: a refit that lands further off the budget than an earlier script does not replace it (the
composer's choices are discrete, so a refit can overshoot); a script within 4% is not refitted.
The voice's measure is a stand-in that returns set lengths in turn; the composer is the real one.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from factory_assets.script import _write_offline
from factory_core.models import Language, TopicRequest
from factory_core.slugs import topic_key
from factory_core.timing import END_TAIL_S
from factory_resources.narration_pace import NarrationPace
from factory_resources.script_writers import OfflineScriptWriter

TOPIC = "50% of people love curly braces: a quote test"


def _topic(duration_s: float) -> Any:
    request = TopicRequest(
        key=topic_key("demo", TOPIC),
        channel="demo",
        topic=TOPIC,
        language=Language.EN,
        duration_s=duration_s,
    )
    return SimpleNamespace(request=request)


def _voice_measuring(lengths: list[float]) -> tuple[NarrationPace, list[list[str]]]:
    """A pace whose measure returns `lengths` (seconds, end tail included) in turn."""
    measured: list[list[str]] = []

    def measure(sentences: list[str]) -> float:
        measured.append(sentences)
        return lengths[len(measured) - 1] - END_TAIL_S

    return NarrationPace(rate=10.2, voice="offline", measure=measure), measured


def test_a_refit_further_off_the_budget_does_not_replace_the_closer_script() -> None:
    # 16.2 s, then two refits that undershoot further: 13.6 s, 13.2 s (as seen with this topic).
    pace, measured = _voice_measuring([16.2, 13.6, 13.2])
    written, refits = _write_offline(_topic(15), OfflineScriptWriter(), pace)
    assert refits == 2 and len(measured) == 3
    assert written.sentences == measured[0]
    assert written.estimated_duration_s == 16.2


def test_the_last_refit_is_kept_when_it_is_the_closest() -> None:
    pace, measured = _voice_measuring([16.8, 15.9, 15.2])
    written, refits = _write_offline(_topic(15), OfflineScriptWriter(), pace)
    assert refits == 2
    assert written.sentences == measured[2]
    assert written.estimated_duration_s == 15.2


def test_a_script_within_four_percent_is_not_refitted() -> None:
    pace, measured = _voice_measuring([30.9])
    written, refits = _write_offline(_topic(30), OfflineScriptWriter(), pace)
    assert refits == 0 and len(measured) == 1
    assert written.estimated_duration_s == 30.9
