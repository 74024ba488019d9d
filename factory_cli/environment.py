"""Where the factory keeps things, decided once per command from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from factory_resources.store import REPO_ROOT, default_home

PROFILE_ENV = "FACTORY_PROFILE"
# The instance file of each profile, relative to the repository.
PROFILES: dict[str, Path] = {
    "local": REPO_ROOT / "dagster.yaml",
    "production": REPO_ROOT / "deploy" / "production" / "dagster.yaml",
}
# What the production instance file reads with `{env: ...}`: Dagster fails at load without them.
PRODUCTION_REQUIRED = ("DAGSTER_PG_URL", "FACTORY_MEDIA_BUCKET")


class ProfileError(ValueError):
    pass


def current_profile() -> str:
    profile = os.environ.get(PROFILE_ENV, "").strip() or "local"
    if profile not in PROFILES:
        raise ProfileError(
            f"{PROFILE_ENV}={profile!r} is not a profile; use one of: {', '.join(PROFILES)}"
        )
    return profile


def instance_config(profile: str) -> Path:
    return PROFILES[profile]


def prepare_dagster_home(home: Path, profile: str) -> Path:
    """A DAGSTER_HOME per profile under `home` (`dagster/`, `dagster-production/`), whose
    dagster.yaml links to the profile's file; a link left by an older checkout is replaced."""
    dagster_home = home / ("dagster" if profile == "local" else f"dagster-{profile}")
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    target = instance_config(profile)
    if config.is_symlink() and config.resolve() != target.resolve():
        config.unlink()
    if not config.exists() and not config.is_symlink():
        config.symlink_to(target)
    return dagster_home


def _production_environment() -> None:
    missing = [name for name in PRODUCTION_REQUIRED if not os.environ.get(name, "").strip()]
    if missing:
        raise ProfileError(
            f"{PROFILE_ENV}=production needs {' and '.join(missing)} set "
            "(PostgreSQL URL for Dagster's storage, S3 bucket for compute logs); see docs/deploy.md"
        )
    # boto3 reads AWS_ENDPOINT_URL_S3 itself, so the instance file needs no endpoint and works
    # unchanged against AWS (unset) and an S3-compatible server (set).
    endpoint = os.environ.get("FACTORY_S3_ENDPOINT_URL", "").strip()
    if endpoint:
        os.environ.setdefault("AWS_ENDPOINT_URL_S3", endpoint)


def prepare_environment() -> Path:
    """Set FACTORY_HOME and DAGSTER_HOME defaults; link the profile's dagster.yaml into the latter
    (FACTORY_PROFILE: `local`, the default, or `production`). An explicit DAGSTER_HOME wins."""
    home = default_home()
    os.environ.setdefault("FACTORY_HOME", str(home))
    home.mkdir(parents=True, exist_ok=True)
    profile = current_profile()
    if profile == "production":
        _production_environment()
    if "DAGSTER_HOME" not in os.environ:
        os.environ["DAGSTER_HOME"] = str(prepare_dagster_home(home, profile))
    return home
