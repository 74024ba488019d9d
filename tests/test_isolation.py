"""One bad topic never takes the batch down, and nothing already produced is lost.

Covers: a topic whose channel settings are broken fails with an error that names the file,
while a good topic in the same batch is made; the failed topic's earlier files stay in place.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from factory_assets.status import topic_status
from factory_resources.store import MediaStore

from .conftest import make_request, produce

pytestmark = pytest.mark.slow


def test_a_failing_topic_leaves_the_others_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    broken_settings = home / "channels" / "broken" / "channel.yaml"
    broken_settings.parent.mkdir(parents=True)
    broken_settings.write_text("brand: {primary: not-a-colour}\n")
    bad = make_request("broken", "A topic on a misconfigured channel")
    good = make_request("demo", "How bees talk to each other", duration_s=15)
    with dg.instance_for_test() as instance:
        results = produce(home, instance, [bad, good])
        assert not results[bad.key].success
        assert results[good.key].success
        assert (home / "topics" / good.key / "video.mp4").stat().st_size > 50_000
        status = topic_status(instance, MediaStore(home=str(home)), bad.key)
        assert status.status == "failed"
        assert "channel.yaml" in (status.error or "")
        assert "primary" in (status.error or "")
        # the failed topic's request is kept, so fixing the channel and re-running is enough
        assert (home / "topics" / bad.key / "request.json").exists()
