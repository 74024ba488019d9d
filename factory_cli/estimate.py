"""`factory estimate FILE --channel C`: a batch's cost before it runs.

Its last line is `estimate: topics=N usd=X`. Topics already made cost nothing again; rejected
rows are listed with their reason and cost nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _usable(channel, store) -> object:  # type: ignore[no-untyped-def]
    """Which paid providers this channel can use now: key set (and, for ElevenLabs, the
    channel's studio voice ready). The same conditions the stages check."""
    from factory_resources.project_db import project_engine
    from factory_resources.voice_studio import find_voice

    settings = channel.providers

    def has_key(env_name: str) -> bool:
        return bool(os.environ.get(env_name, "").strip())

    def voice_ready() -> bool:
        # As the voiceover stage decides: a ready ElevenLabs voice of this owner.
        record = find_voice(project_engine(store.root), channel.owner, settings.voice.voice)
        return record is not None and record.status == "ready" and record.provider == "elevenlabs"

    checks = {
        "openai": lambda: has_key(settings.script.api_key_env),
        "elevenlabs": lambda: has_key(settings.voice.api_key_env) and voice_ready(),
        "fal": lambda: has_key(settings.images.api_key_env),
        "openai-whisper": lambda: has_key(settings.transcription.api_key_env),
    }
    return lambda provider: checks.get(provider, lambda: True)()


def cmd_estimate(args: argparse.Namespace) -> int:
    import dagster as dg

    from factory_core.estimate import ImageSize, estimate_topic
    from factory_core.slugs import InvalidChannelError, channel_slug
    from factory_core.topics_file import TopicFileError, parse_topic_file
    from factory_resources.fal_images import DEFAULT_IMAGE_SIZE, REFERENCE_MODEL
    from factory_resources.narration_pace import narration_pace
    from factory_resources.project_db import price_table
    from factory_resources.store import MediaStore
    from factory_resources.voices import OfflineVoice

    source = Path(args.file)
    try:
        channel_name = channel_slug(args.channel)
        content = source.read_bytes()
    except InvalidChannelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {source} cannot be read ({exc.strerror}); give the path of a topic file",
              file=sys.stderr)  # fmt: skip
        return 2
    store = MediaStore()
    try:
        channel = store.channel_profile(channel_name)
        table = price_table(store.root)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    made = dg.DagsterInstance.get().get_materialized_partitions(dg.AssetKey("video"))
    try:
        batch = parse_topic_file(source.name, content, channel=channel_name)
    except TopicFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    usable = _usable(channel, store)
    voice = OfflineVoice()
    rates: dict[tuple[str, float], float] = {}
    rows = []
    total = 0.0
    for row_request in batch.accepted:
        request = row_request.model_copy(update={"style": row_request.style or channel.style})
        if request.key in made:
            rows.append({"key": request.key, "topic": request.topic, "usd": 0.0, "made": True})
            continue
        rate_key = (request.language.value, channel.voice_speed)
        if rate_key not in rates:
            # The pace the script stage will size the narration with (see narration_pace).
            rates[rate_key] = narration_pace(
                channel,
                store.root,
                offline_rate=voice.speaking_rate(
                    request.language, channel.voice_speed, store.cache_dir("voices")
                ),
                offline_measure=None,
                elevenlabs_usable=bool(
                    os.environ.get(channel.providers.voice.api_key_env, "").strip()
                ),
            ).rate
        estimate = estimate_topic(
            request, channel, rates[rate_key], table, usable,
            ImageSize(width=DEFAULT_IMAGE_SIZE[0], height=DEFAULT_IMAGE_SIZE[1]), REFERENCE_MODEL,
        )  # fmt: skip
        total += estimate.usd
        rows.append({"key": request.key, "topic": request.topic, "usd": estimate.usd,
                     "providers": estimate.providers,
                     "lines": [line.model_dump(mode="json") for line in estimate.lines]})  # fmt: skip
    rejected = [v.model_dump() for v in batch.verdicts if v.status == "rejected"]
    if args.json:
        print(json.dumps({"channel": channel_name, "prices_as_of": table.as_of, "topics": rows,
                          "rejected": rejected}, ensure_ascii=False, indent=2))  # fmt: skip
    else:
        for row in rows:
            what = (
                "already made"
                if row.get("made")
                else ", ".join(
                    f"{stage}: {provider}" for stage, provider in row["providers"].items()
                )
            )
            print(f"{row['usd']:>9.4f} USD  {str(row['topic'])[:48]:<48}  {what}")
        for verdict in rejected:
            print(f"  rejected  row {verdict['row']}: {verdict['reason']}")
        print(f"prices as of {table.as_of}; overrides: {store.root / 'prices.yaml'}")
    print(f"estimate: topics={len(rows)} usd={total:.4f}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("estimate", help="what a topic file will cost, before it runs")
    parser.add_argument("file")
    parser.add_argument("--channel", required=True)
    parser.add_argument("--json", action="store_true", help="per-topic lines as JSON first")
    parser.set_defaults(func=cmd_estimate)
