"""Where the factory keeps things, decided once per command from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from factory_resources.store import REPO_ROOT, default_home


def prepare_environment() -> Path:
    """Set FACTORY_HOME and DAGSTER_HOME defaults; link the repo's dagster.yaml into the latter."""
    home = default_home()
    os.environ.setdefault("FACTORY_HOME", str(home))
    home.mkdir(parents=True, exist_ok=True)
    if "DAGSTER_HOME" not in os.environ:
        dagster_home = home / "dagster"
        dagster_home.mkdir(exist_ok=True)
        config = dagster_home / "dagster.yaml"
        if not config.exists():
            config.symlink_to(REPO_ROOT / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(dagster_home)
    return home
