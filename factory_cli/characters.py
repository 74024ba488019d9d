"""`factory characters`: an owner's recurring characters.

factory characters add NAME IMAGE --owner O [--description TEXT]
factory characters list --owner O [--json]
factory characters variations NAME --owner O --poses a,b --emotions x,y --backgrounds p,q
factory characters delete NAME --owner O

Variations use fal (FAL_KEY) when the key is set, else offline composites; each is scored for
likeness against the reference and flagged when it does not look like the character.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _studio() -> Any:  # CharacterStudio; imported late so `factory --help` stays fast
    from factory_resources.character_studio import CharacterStudio
    from factory_resources.face_similarity import FaceSimilarity
    from factory_resources.fal_images import FalImages
    from factory_resources.project_db import project_engine
    from factory_resources.store import default_home

    home = default_home()
    return CharacterStudio(project_engine(home), home, FaceSimilarity(), fal=FalImages())


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def cmd_add(args: argparse.Namespace) -> int:
    record = _studio().create(args.owner, args.name, Path(args.image), args.description)
    if record.status != "ready":
        _err(f"error: character {record.name!r} saved but not usable: {record.error}")
        return 1
    print(f"added {record.name} for {record.owner}: {record.reference_file}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    records = _studio().list(args.owner)
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return 0
    if not records:
        print(f"{args.owner} has no characters; add one with `factory characters add`")
    for r in records:
        note = f"  ({r.error})" if r.error else ""
        print(f"{r.name:<24} {r.status:<7} {r.description[:40]:<40}{note}")
    return 0


def cmd_variations(args: argparse.Namespace) -> int:
    made = _studio().variations(
        args.owner, args.name, _csv(args.poses), _csv(args.emotions), _csv(args.backgrounds)
    )
    if args.json:
        print(json.dumps([v.model_dump(mode="json") for v in made], indent=2))
    else:
        for v in made:
            score = "no face" if v.similarity is None else f"{v.similarity:.2f}"
            mark = "FLAGGED" if v.flagged else "ok"
            print(f"{mark:<8} {score:>7}  {v.measure:<40} {v.file}")
    flagged = sum(v.flagged for v in made)
    print(f"variations: {len(made)} made, {flagged} flagged as unlike the reference")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _studio().delete(args.owner, args.name)
    print(f"deleted {args.name} of {args.owner}")
    return 0


def _guarded(command: Any) -> Any:
    """Refusals (bad picture, unknown name) and provider failures become one line on stderr."""

    def run(args: argparse.Namespace) -> int:
        from factory_resources.character_studio import CharacterError
        from factory_resources.faults import ProviderError

        try:
            return int(command(args))
        except (CharacterError, ProviderError) as exc:
            _err(f"error: {exc}")
            return 2 if isinstance(exc, CharacterError) else 1

    return run


def register(subparsers: Any) -> None:  # argparse._SubParsersAction
    parser = subparsers.add_parser("characters", help="an owner's recurring characters")
    sub = parser.add_subparsers(dest="characters_command", required=True)

    add = sub.add_parser("add", help="add a character from a reference portrait")
    add.add_argument("name")
    add.add_argument("image", help="a JPEG or PNG, at least 512 px on its short side")
    add.add_argument("--owner", required=True)
    add.add_argument("--description", default="", help="who it is, for prompts")
    add.set_defaults(func=_guarded(cmd_add))

    listing = sub.add_parser("list", help="the owner's characters")
    listing.add_argument("--owner", required=True)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_guarded(cmd_list))

    var = sub.add_parser("variations", help="poses x emotions x backgrounds, likeness-checked")
    var.add_argument("name")
    var.add_argument("--owner", required=True)
    var.add_argument("--poses", default="", help="comma-separated, e.g. 'standing,waving'")
    var.add_argument("--emotions", default="", help="comma-separated, e.g. 'happy,surprised'")
    var.add_argument("--backgrounds", default="", help="comma-separated, e.g. 'office,beach'")
    var.add_argument("--json", action="store_true")
    var.set_defaults(func=_guarded(cmd_variations))

    delete = sub.add_parser("delete", help="delete a character, its pictures and rows")
    delete.add_argument("name")
    delete.add_argument("--owner", required=True)
    delete.set_defaults(func=_guarded(cmd_delete))
