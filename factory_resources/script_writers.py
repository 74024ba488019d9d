"""Script writers. Offline: the deterministic composer in factory_core (no model, no network)."""

from __future__ import annotations

import dagster as dg

from factory_core.models import Script, TopicRequest
from factory_core.script_writer import compose_script


class OfflineScriptWriter(dg.ConfigurableResource):
    """Writes a hook, three to five points and a call to action, fitted to the duration budget."""

    def provider(self) -> str:
        return "offline-composer"

    def write(self, request: TopicRequest, chars_per_second: float) -> Script:
        return compose_script(request, chars_per_second)
