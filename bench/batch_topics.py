"""Generated topic batches for the batch bench: varied, deterministic, in English and Russian.

Topics are built from subjects and angles, so a batch of 50 never repeats a topic and no two
runs of the bench see different input. Every fifth topic is Russian (the espeak voice and the
Russian captions take their own path through the graph).
"""

from __future__ import annotations

import csv
import io
import random

SUBJECTS_EN = [
    "octopuses", "honeybees", "volcanoes", "black holes", "coffee", "the Roman roads",
    "glaciers", "sharks", "tea ceremonies", "lighthouses", "penguins", "desert plants",
    "the printing press", "northern lights", "coral reefs", "sourdough bread", "owls",
    "suspension bridges", "tornadoes", "the first maps", "fireflies", "tides",
    "chess openings", "paper airplanes", "ancient libraries", "mushrooms", "lightning",
    "hummingbirds", "the Silk Road", "submarines", "origami", "sleep",
]  # fmt: skip
ANGLES_EN = [
    "Why {s} matter more than you think",
    "Three surprising facts about {s}",
    "How {s} actually work",
    "The hidden history of {s}",
    "What scientists still don't know about {s}",
]
SUBJECTS_RU = [
    "осьминоги", "вулканы", "северное сияние", "пчёлы", "ледники", "маяки", "совы",
    "торнадо", "грибы", "молнии", "приливы", "шахматы",
]  # fmt: skip
ANGLES_RU = [
    "Почему {s} удивляют учёных",
    "Три факта про {s}",
    "Как устроены {s}",
]


def generated_topics(count: int, seed: int = 8) -> list[tuple[str, str]]:
    """`count` distinct (topic, language) pairs; every fifth is Russian."""
    rng = random.Random(seed)
    english = [a.format(s=s) for s in SUBJECTS_EN for a in ANGLES_EN]
    russian = [a.format(s=s) for s in SUBJECTS_RU for a in ANGLES_RU]
    rng.shuffle(english)
    rng.shuffle(russian)
    out: list[tuple[str, str]] = []
    for i in range(count):
        if i % 5 == 4 and russian:
            out.append((russian.pop(), "ru"))
        else:
            out.append((english.pop(), "en"))
    return out


def topics_csv(topics: list[tuple[str, str]], duration_s: int = 30) -> str:
    """The batch as the CSV a user drops into the inbox (topic, language, duration)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["topic", "language", "duration"])
    writer.writerows([topic, language, duration_s] for topic, language in topics)
    return buf.getvalue()
