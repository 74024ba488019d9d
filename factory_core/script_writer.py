"""The offline script writer: a deterministic composer from the topic, in English and Russian.

It has no knowledge of the world, so it writes a well-shaped explainer around the topic: a hook,
three to five points, a call to action, sized to the duration budget with the voice's measured
speaking rate. A user's own script is used verbatim, split into scenes at sentence ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from factory_core.models import Language, Scene, Script, TopicRequest
from factory_core.platforms import fit_description, fit_hashtags, fit_title
from factory_core.quality import DURATION_TOLERANCE
from factory_core.text import STOPWORDS, keywords, shorten, speakable, split_sentences
from factory_core.timing import END_TAIL_S, estimate_duration

MIN_SCENES = 4
MAX_SCENES = 7


@dataclass(frozen=True)
class _Templates:
    hooks: tuple[str, ...]
    points: tuple[tuple[str, str], ...]  # (main sentence, optional follow-up)
    ctas: tuple[str, ...]
    fillers: tuple[str, ...]
    description: str
    # The last resort of a short budget with a slow voice: the fewest words that still open
    # and close a short.
    brief_hook: str
    brief_cta: str


_EN = _Templates(
    hooks=(
        "Here is what most people get wrong about {s}.",
        "You have heard of {s}, but have you seen the full picture?",
        "Give me thirty seconds and {s} will make sense.",
        "Let's talk about {s}, quickly and clearly.",
    ),
    points=(
        ("Start with the basics.", "Once the core idea clicks, everything else follows."),
        ("Look at the context.", "The details around it change the whole story."),
        ("Notice the pattern.", "The same simple rule keeps showing up again and again."),
        ("Small choices add up.", "Tiny steps repeated every day beat one big effort."),
        ("Ask who benefits and why.", "That question cuts through most of the noise."),
        ("Watch the common mistakes.", "Most people skip the simple checks and pay for it later."),
        ("Test it yourself.", "A small experiment teaches more than a long article."),
    ),
    ctas=(
        "Follow for more short explainers, and tell me what to cover next.",
        "Save this for later and share it with a friend who needs it.",
        "Subscribe for one clear idea every day.",
    ),
    fillers=(
        "Keep that in mind.",
        "It is simpler than it looks.",
        "This is where it gets interesting.",
        "Think about it for a second.",
        "That changes how you see it.",
        "And it works more often than you would expect.",
    ),
    description="A thirty second explainer about {t}. New shorts every day.",
    brief_hook="{s}, in brief.",
    brief_cta="Follow for more.",
)

_RU = _Templates(
    hooks=(
        "Вот что многие упускают в теме «{s}».",
        "Все слышали про «{s}», но мало кто видит картину целиком.",
        "Дайте мне тридцать секунд, и тема «{s}» станет понятной.",
        "Коротко и ясно: «{s}».",
    ),
    points=(
        ("Начнём с основ.", "Когда понятна главная идея, остальное складывается само."),
        ("Посмотрите на контекст.", "Детали вокруг меняют всю историю."),
        ("Заметьте закономерность.", "Одно простое правило повторяется снова и снова."),
        ("Мелочи складываются.", "Маленькие шаги каждый день сильнее одного рывка."),
        ("Спросите, кому это выгодно.", "Этот вопрос отсекает большую часть шума."),
        ("Избегайте типичных ошибок.", "Многие пропускают простые проверки и платят за это."),
        ("Проверьте сами.", "Маленький опыт учит больше длинной статьи."),
    ),
    ctas=(
        "Подпишитесь, чтобы не пропустить новые ролики, и напишите, о чём рассказать дальше.",
        "Сохраните видео и отправьте другу, которому это пригодится.",
        "Подписывайтесь: одна ясная идея каждый день.",
    ),
    fillers=(
        "Запомните это.",
        "Всё проще, чем кажется.",
        "Здесь начинается самое интересное.",
        "Задумайтесь об этом на секунду.",
        "Это меняет взгляд на вещи.",
        "И это работает чаще, чем кажется.",
    ),
    description="Короткое объяснение на тему «{t}». Новые ролики каждый день.",
    brief_hook="Коротко: «{s}».",
    brief_cta="Подписывайтесь.",
)

_TEMPLATES = {Language.EN: _EN, Language.RU: _RU}


def subject_of(topic: str) -> str:
    """The topic as a short spoken phrase: the first clause, at most 8 words."""
    text = speakable(topic)
    for stop in (". ", "? ", "! ", "; ", ": ", " - ", " — "):
        head = text.split(stop)[0]
        if len(head.split()) >= 2:
            text = head
            break
    subject = shorten(text, max_words=8, max_chars=60).strip(" .,!?;:-—\"'«»/\\")
    # "Why do cats..." reads as a phrase inside a sentence; keep acronyms like "NASA" as they are.
    first = subject.split(" ", 1)[0]
    if first.casefold() in STOPWORDS and first[1:].islower():
        subject = subject[0].lower() + subject[1:]
    return subject


def compose_script(request: TopicRequest, chars_per_second: float) -> Script:
    """A script for the request, fitted to its duration budget at the given speaking rate."""
    if request.script:
        return _verbatim_script(request, chars_per_second)
    t = _TEMPLATES[request.language]
    cps = chars_per_second
    seed = int(hashlib.sha256(request.key.encode()).hexdigest(), 16)
    subject = subject_of(request.topic)
    start = (seed >> 16) % len(t.points)
    order = [t.points[(start + i) % len(t.points)] for i in range(len(t.points))]
    budget = request.duration_s
    # A long subject or a slow voice can make even the shortest script overrun a short budget
    # (15 s): the hook then names a shorter head of the subject (the title keeps it whole), and
    # at last the brief hook and call to action are used.
    for max_words, brief in (
        (None, False),
        (6, False),
        (4, False),
        (3, False),
        (3, True),
        (2, True),
    ):
        spoken = subject
        if max_words is not None:
            spoken = shorten(subject, max_words=max_words, max_chars=60).rstrip(" ,;:-—")
        hooks = [t.brief_hook] if brief else _rotated(list(t.hooks), seed)
        ctas = [t.brief_cta] if brief else _rotated(list(t.ctas), seed >> 8)
        # A hook may open with the subject ("{s}, in brief."), which can start in lower case.
        opened = [(h := hook.format(s=spoken))[:1].upper() + h[1:] for hook in hooks]
        best = _closest_fit(opened, ctas, order, cps, budget)
        sentences = [s for scene in best for s in scene]
        if estimate_duration(sentences, cps) <= budget * (1 + DURATION_TOLERANCE):
            break
    best = _pad_with_fillers(best, t.fillers, cps, budget, seed)
    body_points = [" ".join(s) for s in best[1:-1]]
    return _assemble(request, best, best[0][0], body_points, best[-1][0], cps, "composer")


def _closest_fit(
    hooks: list[str],
    ctas: list[str],
    order: list[tuple[str, str]],
    cps: float,
    budget: float,
) -> list[list[str]]:
    """Of three to five points, each with or without its follow-up, and every hook and call to
    action, the script that fits the budget best. A later candidate must fit better by 0.25 s
    to win, so near-ties keep the seeded hook and more points (more scenes keep it moving)."""
    best: list[list[str]] | None = None
    for hook in hooks:
        for cta in ctas:
            for n_points in (5, 4, 3):
                for follow_ups in range(n_points, -1, -1):
                    points = [
                        [main, extra] if i < follow_ups else [main]
                        for i, (main, extra) in enumerate(order[:n_points])
                    ]
                    candidate = [[hook], *points, [cta]]
                    if (
                        best is None
                        or _fit_error(candidate, cps, budget) < _fit_error(best, cps, budget) - 0.25
                    ):
                        best = candidate
    assert best is not None
    return best


def _rotated(items: list[str], seed: int) -> list[str]:
    start = seed % len(items)
    return items[start:] + items[:start]


def _fit_error(scenes: list[list[str]], cps: float, budget: float) -> float:
    return abs(estimate_duration([s for sc in scenes for s in sc], cps) - budget)


def _pad_with_fillers(
    scenes: list[list[str]], fillers: tuple[str, ...], cps: float, budget: float, seed: int
) -> list[list[str]]:
    """A slow voice or a long budget: add short bridge sentences until the fit stops improving."""
    scenes = [list(s) for s in scenes]
    for i in range(len(fillers) * 3):
        if estimate_duration([s for sc in scenes for s in sc], cps) >= budget * 0.97:
            break
        trial = [list(s) for s in scenes]
        target = 1 + (i % (len(trial) - 2))
        trial[target].append(fillers[(seed + i) % len(fillers)])  # cycles through all
        if _fit_error(trial, cps, budget) >= _fit_error(scenes, cps, budget):
            break
        scenes = trial
    return scenes


def _verbatim_script(request: TopicRequest, cps: float) -> Script:
    assert request.script is not None
    sentences = split_sentences(request.script) or [request.script]
    groups = _group_sentences(sentences)
    hook = sentences[0]
    cta = sentences[-1] if len(sentences) > 1 else ""
    body = sentences[1:-1] if len(sentences) > 2 else []
    return _assemble(request, groups, hook, body, cta, cps, "user")


def script_from_recording(
    request: TopicRequest, sentences: list[str], recording_s: float, cps: float
) -> Script:
    """A user's recording as the script: the sentences heard in it, grouped into scenes; its
    own length is the budget (the recording is the voice, it cannot be refitted)."""
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise ValueError("the recording has no words to caption")
    groups = _group_sentences(sentences)
    hook = sentences[0]
    cta = sentences[-1] if len(sentences) > 1 else ""
    body = sentences[1:-1] if len(sentences) > 2 else []
    script = _assemble(request, groups, hook, body, cta, cps, "recording")
    length = round(recording_s + END_TAIL_S, 2)
    return script.model_copy(update={"target_duration_s": length, "estimated_duration_s": length})


def _group_sentences(sentences: list[str]) -> list[list[str]]:
    """Split a user's sentences into at most MAX_SCENES scenes of near-equal length, in order."""
    n_scenes = min(MAX_SCENES, len(sentences))
    total_words = sum(len(s.split()) for s in sentences)
    groups: list[list[str]] = []
    current: list[str] = []
    words_so_far = 0
    for i, sentence in enumerate(sentences):
        current.append(sentence)
        words_so_far += len(sentence.split())
        remaining_sentences = len(sentences) - i - 1
        remaining_scenes = n_scenes - len(groups) - 1
        due = words_so_far >= total_words * (len(groups) + 1) / n_scenes
        if remaining_scenes > 0 and (due or remaining_sentences == remaining_scenes):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def timed_scenes(
    scene_sentences: list[list[str]],
    cps: float,
    describe: Callable[[int, str], tuple[list[str], str]],
) -> list[Scene]:
    """Scenes laid end to end at the voice's pace; `describe(index, narration)` gives each
    scene's key words and picture prompt (the composer and an LLM find them differently)."""
    scenes: list[Scene] = []
    clock = 0.0
    for index, sentences in enumerate(scene_sentences):
        narration = " ".join(sentences)
        duration = estimate_duration(sentences, cps)
        scene_words, prompt = describe(index, narration)
        scenes.append(
            Scene(
                index=index, narration=narration, sentences=sentences, keywords=scene_words,
                visual_prompt=prompt, planned_start_s=round(clock, 2),
                planned_duration_s=round(duration, 2),
            )
        )  # fmt: skip
        clock += duration
    return scenes


def _assemble(
    request: TopicRequest,
    scene_sentences: list[list[str]],
    hook: str,
    body_points: list[str],
    cta: str,
    cps: float,
    source: str,
) -> Script:
    t = _TEMPLATES[request.language]
    topic_words = keywords(request.topic, limit=3)

    def describe(index: int, narration: str) -> tuple[list[str], str]:
        words = keywords(narration, limit=3) if index > 0 else []
        scene_words = (words + [w for w in topic_words if w not in words])[:3] or topic_words
        return scene_words, (
            f"{', '.join(scene_words) or subject_of(request.topic)}; "
            f"{request.style or 'explainer'} style, "
            "vertical 9:16 composition, bold shapes, high contrast"
        )

    scenes = timed_scenes(scene_sentences, cps, describe)
    all_sentences = [s for group in scene_sentences for s in group]
    title = fit_title(subject_of(request.topic)[:1].upper() + subject_of(request.topic)[1:])
    return Script(
        topic=request.topic,
        language=request.language,
        title=title,
        description=fit_description(t.description.format(t=subject_of(request.topic))),
        hashtags=fit_hashtags([*topic_words, request.style or "explainer", "shorts"]),
        hook=hook,
        body_points=body_points,
        call_to_action=cta,
        scenes=scenes,
        target_duration_s=(
            request.duration_s
            if source == "composer"
            else round(estimate_duration(all_sentences, cps), 2)
        ),
        estimated_duration_s=round(estimate_duration(all_sentences, cps), 2),
        chars_per_second=round(cps, 3),
        source=source,
    )
