"""scene_images: one 1080x1920 picture per scene, cut where the narration's sentences end.

Per scene: the channel's own media when it matches; else the providers of the channel's
`providers.images.chain` in order (`fal`: FLUX on fal.ai, with the channel's studio character
through a reference-conditioned model; `procedural`: offline, with the character's portrait
composited). A provider that fails is skipped for the rest of the topic, on record. When the
channel has a character, every picture meant to show it is scored for likeness.
"""

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from factory_assets.common import (
    PROVIDER_RETRY,
    TopicContext,
    image_preview,
    load_stage,
    push_media,
    record_costs,
    topic_context,
)
from factory_assets.partitions import topics
from factory_assets.script import script
from factory_assets.voiceover import voiceover
from factory_core.costs import CostLine, PriceTable
from factory_core.models import Scene, SceneImage, SceneImages, Script, Voiceover
from factory_core.timing import END_TAIL_S, scene_spans
from factory_resources.character_studio import (
    OFFLINE_MEASURE_PREFIX,
    CharacterError,
    CharacterRecord,
    CharacterStudio,
    is_flagged,
    scene_prompt,
)
from factory_resources.face_similarity import FaceSimilarity, SimilarityScore
from factory_resources.fal_images import (
    DEFAULT_IMAGE_SIZE,
    REFERENCE_MODEL,
    FalImages,
    record_path,
    scene_seed,
)
from factory_resources.faults import ProviderError
from factory_resources.images import SceneImageMaker, match_media, media_index
from factory_resources.project_db import price_table, project_engine
from factory_resources.store import MediaStore


@dataclass
class Character:
    record: CharacterRecord
    reference: Path
    studio: CharacterStudio


@dataclass
class Fallbacks:
    """Which providers dropped out of this topic's chain, why, and for which scenes."""

    out: dict[str, str] = field(default_factory=dict)  # provider -> reason
    scenes: dict[str, list[int]] = field(default_factory=dict)
    transient: bool = True  # every failure so far may pass (rate limit, outage, timeout)

    def drop(self, provider: str, error: ProviderError) -> None:
        self.out.setdefault(provider, str(error))
        self.transient = self.transient and error.retryable

    def passed_over(self, provider: str, index: int) -> None:
        self.scenes.setdefault(provider, []).append(index)

    def report(self) -> list[dict[str, object]]:
        return [
            {"provider": p, "reason": self.out[p], "scenes": self.scenes.get(p, [])}
            for p in self.out
        ]


def provider_family(source: str) -> str:
    """'media:x.jpg' -> 'channel-media', 'fal:model' -> 'fal', 'procedural' -> 'procedural'."""
    head = source.split(":", 1)[0]
    return "channel-media" if head == "media" else head


@dg.asset(
    partitions_def=topics,
    deps=[script, voiceover],
    group_name="production",
    kinds={"pillow", "fal"},
    code_version="2",
    pool="images",
    retry_policy=PROVIDER_RETRY,
    description="Scene pictures: the channel's own media when it matches, else the channel's "
    "image chain (fal, procedural), with its studio character when it has one.",
)
def scene_images(
    context: dg.AssetExecutionContext,
    store: MediaStore,
    image_maker: SceneImageMaker,
    fal: FalImages,
    face_similarity: FaceSimilarity,
) -> dg.MaterializeResult:
    topic = topic_context(context, store)
    written = load_stage(topic, "script.json", Script, "script")
    spoken = load_stage(topic, "voiceover.json", Voiceover, "voiceover")
    spans = scene_spans(
        spoken.sentences,
        [len(scene.sentences) for scene in written.scenes],
        spoken.duration_s + END_TAIL_S,
    )
    settings = topic.channel.providers.images
    character = _character(topic, store, face_similarity)
    prices = _prices(store) if "fal" in settings.chain else PriceTable()
    media = media_index(store.channel_dir(topic.request.channel) / "media")
    used: set[Path] = set()
    images: list[SceneImage] = []
    fallbacks = Fallbacks()
    cost_usd = 0.0
    scored: list[tuple[int, Path, SimilarityScore, str]] = []  # scene, picture, score, measure
    scenes_dir = topic.dir / "scenes"
    scenes_dir.mkdir(exist_ok=True)
    for scene, span in zip(written.scenes, spans, strict=True):
        out = scenes_dir / f"scene-{scene.index:02d}.png"
        match = match_media(scene.keywords, media, used)
        if match is not None:
            used.add(match)
            with store.atomic_path(out) as tmp:
                image_maker.from_media(match, tmp)
            record_path(out).unlink(missing_ok=True)  # no longer fal's picture
            source = f"media:{match.name}"
        else:
            source, lines = _draw(
                context, topic, scene, out, store, image_maker, fal, character, prices, fallbacks
            )
            # Per scene: a later failure keeps what was already paid on the ledger.
            cost_usd += record_costs(topic, lines, "scene_images")
            if character is not None:
                score = face_similarity.score(character.reference, out)
                offline = provider_family(source) == "procedural"
                prefix = OFFLINE_MEASURE_PREFIX if offline else ""
                scored.append((scene.index, out, score, prefix + score.measure))
        images.append(
            SceneImage(index=scene.index, image_file=f"scenes/{out.name}", source=source, span=span)
        )
    store.write_model(topic.dir / "scene_images.json", SceneImages(images=images))
    families = list(dict.fromkeys(provider_family(i.source) for i in images))
    metadata: dict[str, object] = {
        "scenes": len(images),
        "sources": ", ".join(i.source for i in images),
        "cuts_s": ", ".join(f"{i.span.start:.2f}" for i in images),
        "preview": image_preview(topic.dir / images[0].image_file),
        "provider": "+".join(families),
        "provider_chain": " → ".join(settings.chain),
        "fallbacks": dg.MetadataValue.json(fallbacks.report()),
        "cost_usd": round(cost_usd, 6),
        "path": dg.MetadataValue.path(str(scenes_dir)),
    }
    if character is not None:
        metadata.update(_likeness(topic, character, scored))
    push_media(context, store, topic)
    return dg.MaterializeResult(metadata=metadata)


def _draw(
    context: dg.AssetExecutionContext, topic: TopicContext, scene: Scene, out: Path,
    store: MediaStore, image_maker: SceneImageMaker, fal: FalImages,
    character: Character | None, prices: PriceTable, fallbacks: Fallbacks,
) -> tuple[str, list[CostLine]]:  # fmt: skip
    """The scene's picture from the first provider of the chain that delivers one."""
    settings = topic.channel.providers.images
    for provider in settings.chain:
        if provider in fallbacks.out:
            fallbacks.passed_over(provider, scene.index)
            continue
        if provider == "procedural":
            with store.atomic_path(out) as tmp:
                image_maker.procedural(
                    scene.keywords, topic.channel.brand, f"{topic.key}/{scene.index}", tmp,
                    character=character.reference if character else None,
                )  # fmt: skip
            record_path(out).unlink(missing_ok=True)  # no longer fal's picture
            return "procedural", []
        try:
            return _draw_fal(topic, scene, out, fal, character, prices)
        except ProviderError as exc:
            # One failure takes fal out for the rest of the topic: the same key, quota or outage
            # would fail every scene, each after its own retries and timeout.
            context.log.warning(f"scene {scene.index}: {provider} failed, next in chain: {exc}")
            fallbacks.drop(provider, exc)
            fallbacks.passed_over(provider, scene.index)
    reasons = "; ".join(f"{p}: {r}" for p, r in fallbacks.out.items())
    raise dg.Failure(
        description=f"scene {scene.index} of {topic.key}: every image provider in the chain "
        f"{settings.chain} failed ({reasons})",
        # Outages and rate limits pass, so Dagster may try again; a missing or refused key
        # needs the user.
        allow_retries=fallbacks.transient,
    )


def _draw_fal(
    topic: TopicContext, scene: Scene, out: Path, fal: FalImages, character: Character | None,
    prices: PriceTable,
) -> tuple[str, list[CostLine]]:  # fmt: skip
    settings = topic.channel.providers.images
    unusable = fal.available(settings.api_key_env)
    if unusable is not None:
        raise ProviderError("fal", unusable)
    seed = scene_seed(topic.key, scene.index)
    if character is not None:
        prompt = scene_prompt(character.record.description, scene.visual_prompt)
        lines = fal.with_reference(
            REFERENCE_MODEL, prompt, character.reference, seed, out,
            api_key_env=settings.api_key_env, prices=prices,
        )  # fmt: skip
        return f"fal:{REFERENCE_MODEL}", lines
    width, height = DEFAULT_IMAGE_SIZE
    lines = fal.text_to_image(
        settings.model, scene.visual_prompt, seed, width, height, out,
        api_key_env=settings.api_key_env, prices=prices,
    )  # fmt: skip
    return f"fal:{settings.model}", lines


def _character(
    topic: TopicContext, store: MediaStore, similarity: FaceSimilarity
) -> Character | None:
    """The channel's studio character; a channel naming one it cannot use fails here, before
    any paid call, because scenes without the character would not be what it asked for."""
    name = topic.channel.providers.images.character
    if not name:
        return None
    studio = CharacterStudio(project_engine(store.root), store.root, similarity)
    try:
        record = studio.get(topic.channel.owner, name)
    except CharacterError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if record.status != "ready":
        raise dg.Failure(
            description=f"channel {topic.channel.name!r} uses character {name!r}, which is not "
            f"usable: {record.error}",
            allow_retries=False,
        )
    return Character(record, studio.reference(record), studio)


def _prices(store: MediaStore) -> PriceTable:
    try:
        return price_table(store.root)
    except ValueError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def _likeness(
    topic: TopicContext,
    character: Character,
    scored: list[tuple[int, Path, SimilarityScore, str]],
) -> dict[str, object]:
    """Stores each scene's likeness score and sums them up for the run's metadata."""
    rows = character.studio.record_scenes(
        character.record.owner, character.record.name, topic.key,
        [(path, score, measure) for _, path, score, measure in scored],
    )  # fmt: skip
    similarities = [s.similarity for _, _, s, _ in scored if s.similarity is not None]
    flagged = [index for index, _, s, _ in scored if is_flagged(s)]
    return {
        "character": character.record.name,
        "character_similarity_min": round(min(similarities), 4) if similarities else None,
        "flagged_scenes": dg.MetadataValue.json(flagged),
        "character_scored": len(rows),
    }
