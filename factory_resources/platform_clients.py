"""The `platforms` resource: one publisher per platform and the account it posts as.

Where each platform's API lives is configuration (the real hosts by default), so a local Bot API
server, a proxy or a test's fake server takes one setting, and no code changes. Accounts come
from the encrypted vault; OAuth tokens are refreshed before they run out. Nothing secret passes
through Dagster config or metadata: only the account's display name does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from factory_core.publish_metadata import Platform
from factory_core.publishing import MetricsSource


class PlatformClients(dg.ConfigurableResource):
    """Each platform's API base URL; the defaults are the platforms' own."""

    youtube_api: str = "https://youtube.googleapis.com/"
    youtube_analytics_api: str | None = Field(
        None, description="YouTube Analytics API root; None: Google's own."
    )
    youtube_ca_certs: str | None = Field(
        None, description="A CA bundle for the YouTube API host (a self-hosted proxy)."
    )
    tiktok_api: str = "https://open.tiktokapis.com"
    instagram_api: str = "https://graph.facebook.com/v21.0"
    instagram_upload_api: str = "https://rupload.facebook.com"
    x_api: str = "https://api.x.com"
    telegram_api: str = Field(
        "https://api.telegram.org", description="Or a local Bot API server (2 GB uploads)."
    )
    poll_interval_s: float = Field(5.0, description="Between processing-status polls.")
    attempts: int = Field(5, ge=1, le=10, description="Tries per call on transient errors.")
    timeout_s: float = Field(120.0, gt=0, description="Per HTTP call.")

    def publisher(self, platform: Platform | str) -> Any:
        """The live publisher (and metrics source) of `platform`. Imports lazily: a run that
        posts to one platform does not load the other four clients."""
        platform = Platform(platform)
        common: dict[str, Any] = {"attempts": self.attempts, "timeout_s": self.timeout_s}
        if platform is Platform.YOUTUBE:
            from factory_resources.youtube_publisher import YouTubePublisher

            return YouTubePublisher(
                self.youtube_api,
                ca_certs=self.youtube_ca_certs,
                analytics_endpoint=self.youtube_analytics_api,
                **common,
            )
        if platform is Platform.TIKTOK:
            from factory_resources.tiktok_publisher import TikTokPublisher

            return TikTokPublisher(self.tiktok_api, poll_interval_s=self.poll_interval_s, **common)
        if platform is Platform.INSTAGRAM:
            from factory_resources.instagram_publisher import InstagramPublisher

            return InstagramPublisher(
                self.instagram_api,
                upload_base_url=self.instagram_upload_api,
                poll_interval_s=self.poll_interval_s,
                **common,
            )
        if platform is Platform.X:
            from factory_resources.x_publisher import XPublisher

            return XPublisher(self.x_api, **common)
        from factory_resources.telegram_publisher import TelegramPublisher

        return TelegramPublisher(self.telegram_api, **common)

    def account(
        self, home: Path, owner: str, channel: str, platform: Platform | str
    ) -> tuple[str, dict[str, Any]]:
        """The connected account's display name and fresh credentials. Raises the vault's
        AccountNotConnectedError / ReconnectNeededError, whose messages say what to run."""
        from factory_resources.account_oauth import fresh_credentials
        from factory_resources.account_vault import account_vault

        vault = account_vault(home)
        stored = vault.load(owner, channel, str(Platform(platform)))
        if Platform(platform) is Platform.TELEGRAM:  # a bot token does not expire
            return stored.account_name, stored.credentials
        return stored.account_name, fresh_credentials(vault, owner, channel, str(platform))


def metrics_source(publisher: object) -> MetricsSource | None:
    """The publisher as a metrics source, if its platform reports statistics."""
    return publisher if callable(getattr(publisher, "metrics", None)) else None  # type: ignore[return-value]
