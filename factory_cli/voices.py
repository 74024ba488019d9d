"""`factory voices`: the voice studio from the command line.

factory voices check FILE...                          check samples locally (no key needed)
factory voices add NAME FILE... --owner O [--language ru] [--description D]
                                                      check, then clone at ElevenLabs
factory voices add-offline NAME --owner O [--language ru] [--speed 1.1] [--pitch -2]
factory voices list --owner O [--json]
factory voices test NAME --owner O [--phrase TEXT] [--out voice.wav]
factory voices set NAME --owner O [--stability 0.5] [--similarity-boost 0.8] [--style 0]
                                  [--speed 1.0] [--speaker-boost|--no-speaker-boost] [--pitch 0]
factory voices delete NAME --owner O

Env: ELEVENLABS_API_KEY (clones, tests and settings of cloned voices); ELEVENLABS_BASE_URL
(optional, another endpoint, e.g. a local fake). Exit codes: 0 done, 1 the provider failed,
2 bad input (unknown voice, rejected samples, settings out of range).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory_core.models import Language

if TYPE_CHECKING:
    from factory_core.voice_samples import SampleReport
    from factory_resources.voice_studio import VoiceStudio


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _studio(api_key_env: str = "ELEVENLABS_API_KEY") -> VoiceStudio:
    # Imported here: `factory --help` should not pay for dagster, sqlalchemy and the SDK.
    from factory_resources.elevenlabs_voice import ElevenLabsVoice
    from factory_resources.project_db import project_engine
    from factory_resources.store import MediaStore
    from factory_resources.voice_studio import VoiceStudio

    home = MediaStore().root
    elevenlabs = ElevenLabsVoice(base_url=os.environ.get("ELEVENLABS_BASE_URL") or None)
    return VoiceStudio(project_engine(home), elevenlabs, home, api_key_env=api_key_env)


def _run(handler: Any) -> Any:
    """Runs a command; studio errors are bad input (2), provider errors are failures (1)."""

    def wrapped(args: argparse.Namespace) -> int:
        from factory_resources.faults import ProviderError
        from factory_resources.voice_studio import VoiceStudioError

        try:
            return int(handler(args))
        except VoiceStudioError as exc:
            _err(f"error: {exc}")
            return 2
        except ProviderError as exc:
            _err(f"error: {exc}")
            return 1

    return wrapped


def _print_report(report: SampleReport) -> None:
    print(report.summary())


def cmd_check(args: argparse.Namespace) -> int:
    report = _studio().check_samples([Path(f) for f in args.files])
    _print_report(report)
    return 0 if report.accepted else 2


def cmd_add(args: argparse.Namespace) -> int:
    from factory_resources.voice_studio import SamplesRejectedError

    studio = _studio()
    try:
        record = studio.clone(
            args.owner, args.name, [Path(f) for f in args.files], args.language, args.description
        )
    except SamplesRejectedError as exc:
        _print_report(exc.report)
        _err(f"error: samples rejected; nothing was sent to ElevenLabs and {args.name!r} was "
             "not created")  # fmt: skip
        return 2
    if record.status != "ready":
        _err(f"error: cloning {args.name!r} failed at ElevenLabs: {record.error}")
        return 1
    print(f"voice {record.name!r} ready (ElevenLabs id {record.provider_voice_id})")
    return 0


def cmd_add_offline(args: argparse.Namespace) -> int:
    record = _studio().create_offline(
        args.owner, args.name, args.language, speed=args.speed, pitch=args.pitch
    )
    print(f"offline voice {record.name!r} ready ({record.provider_voice_id}, {record.settings})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    records = _studio().list(args.owner)
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in records], ensure_ascii=False,
                         indent=2))  # fmt: skip
        return 0
    for r in records:
        where = r.provider_voice_id or "-"
        error = f"  {r.error}" if r.error else ""
        print(f"{r.name:<24} {r.provider:<10} {r.language:<3} {r.status:<8} "
              f"used {r.usage_count:<4} {where}{error}")  # fmt: skip
    print(f"{len(records)} voices for owner {args.owner!r}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    studio = _studio()
    record = studio.get(args.owner, args.name)
    out = Path(args.out) if args.out else studio.home / "cache" / "voice-tests" / f"{record.id}.wav"
    spoken = studio.test(args.owner, args.name, args.phrase, out)
    print(f"{out} ({spoken.duration_s:.1f} s, {len(spoken.words)} words, {spoken.provider})")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    settings = {
        "stability": args.stability, "similarity_boost": args.similarity_boost,
        "style": args.style, "speed": args.speed, "use_speaker_boost": args.speaker_boost,
        "pitch": args.pitch,
    }  # fmt: skip
    given = {k: v for k, v in settings.items() if v is not None}
    if not given:
        _err("error: give at least one setting, e.g. --stability 0.5")
        return 2
    record = _studio().update_settings(args.owner, args.name, **given)
    print(f"voice {record.name!r} settings: {json.dumps(record.settings)}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _studio().delete(args.owner, args.name)
    print(f"voice {args.name!r} deleted")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `voices` and its commands to the `factory` parser."""
    voices = subparsers.add_parser(
        "voices", help="the voice studio: clone, check, test, tune, delete voices",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = voices.add_subparsers(dest="voices_command", required=True)
    languages = [lang.value for lang in Language]

    check = sub.add_parser("check", help="check voice samples locally")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=_run(cmd_check))

    add = sub.add_parser("add", help="check samples, then clone the voice at ElevenLabs")
    add.add_argument("name")
    add.add_argument("files", nargs="+", metavar="FILE")
    add.add_argument("--owner", required=True)
    add.add_argument("--language", choices=languages, default="en")
    add.add_argument("--description", default="")
    add.set_defaults(func=_run(cmd_add))

    offline = sub.add_parser("add-offline", help="an offline voice profile (no key needed)")
    offline.add_argument("name")
    offline.add_argument("--owner", required=True)
    offline.add_argument("--language", choices=languages, default="en")
    offline.add_argument("--speed", type=float, default=1.0)
    offline.add_argument("--pitch", type=float, default=0.0, help="semitones")
    offline.set_defaults(func=_run(cmd_add_offline))

    listing = sub.add_parser("list", help="an owner's voices")
    listing.add_argument("--owner", required=True)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_run(cmd_list))

    test = sub.add_parser("test", help="speak a test phrase with a voice")
    test.add_argument("name")
    test.add_argument("--owner", required=True)
    test.add_argument("--phrase")
    test.add_argument("--out", help="WAV to write (default: the cache)")
    test.set_defaults(func=_run(cmd_test))

    tune = sub.add_parser("set", help="change a voice's settings")
    tune.add_argument("name")
    tune.add_argument("--owner", required=True)
    tune.add_argument("--stability", type=float)
    tune.add_argument("--similarity-boost", type=float)
    tune.add_argument("--style", type=float)
    tune.add_argument("--speed", type=float)
    tune.add_argument("--speaker-boost", action=argparse.BooleanOptionalAction, default=None)
    tune.add_argument("--pitch", type=float, help="offline voices: semitones")
    tune.set_defaults(func=_run(cmd_set))

    delete = sub.add_parser("delete", help="delete a voice here and at the provider")
    delete.add_argument("name")
    delete.add_argument("--owner", required=True)
    delete.set_defaults(func=_run(cmd_delete))
