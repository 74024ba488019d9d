"""The factory's Definitions: every asset, check, resource, job and sensor, in one place.

Loads with an empty environment: offline providers need no keys. `$FACTORY_HOME` (default
`.factory/` in the repository) holds all media; see README.md.
"""

import dagster as dg

from factory_assets.analytics import channel_analytics, post_metrics
from factory_assets.checks import captions_follow_narration, script_is_publishable, video_meets_spec
from factory_assets.execution import topic_executor
from factory_assets.publications import publications
from factory_assets.report import batch_report
from factory_assets.scene_images import scene_images
from factory_assets.script import script
from factory_assets.subtitles import subtitles
from factory_assets.thumbnail import thumbnail
from factory_assets.transcript_checks import narration_matches_script
from factory_assets.video import video
from factory_assets.voiceover import voiceover
from factory_resources.elevenlabs_voice import ElevenLabsVoice
from factory_resources.face_similarity import FaceSimilarity
from factory_resources.fal_images import FalImages
from factory_resources.ffmpeg import FfmpegRenderer
from factory_resources.images import SceneImageMaker
from factory_resources.llm_writer import OpenAIScriptWriter
from factory_resources.moviepy_renderer import MoviepyRenderer
from factory_resources.platform_clients import PlatformClients
from factory_resources.script_writers import OfflineScriptWriter
from factory_resources.store import media_store
from factory_resources.transcribers import Transcriber
from factory_resources.voices import OfflineVoice
from factory_sensors.batch_pages import batch_pages_sensor
from factory_sensors.jobs import (
    analytics_schedule,
    produce_topic,
    publish_topic,
    refresh_analytics,
    report_job,
)
from factory_sensors.posting_slots import posting_slots_sensor
from factory_sensors.topic_batch import topic_batch_sensor

TOPIC_ASSETS = [script, voiceover, scene_images, subtitles, video, thumbnail, publications]
CHECKS = [
    script_is_publishable,
    captions_follow_narration,
    video_meets_spec,
    narration_matches_script,
]


def offline_resources(home: str = "") -> dict[str, object]:
    """The embedded default: every provider runs on this machine."""
    return {
        "store": media_store(home),
        "script_writer": OfflineScriptWriter(),
        "voice": OfflineVoice(),
        "image_maker": SceneImageMaker(),
        "renderer": FfmpegRenderer(),
        "moviepy_renderer": MoviepyRenderer(),
        # Premium providers: used only by channels that ask for them (channel.yaml `providers`)
        # and only when their key is set; otherwise the channel's chain goes on, on record.
        "llm": OpenAIScriptWriter(),
        "elevenlabs": ElevenLabsVoice(),
        "fal": FalImages(),
        "face_similarity": FaceSimilarity(),
        "transcriber": Transcriber(),
        # Used only by channels with `publishing.publisher: accounts`.
        "platforms": PlatformClients(),
    }


def build_definitions(home: str = "", overrides: dict[str, object] | None = None) -> dg.Definitions:
    """`overrides` replaces resources by key (tests point premium providers at local fakes)."""
    return dg.Definitions(
        assets=[*TOPIC_ASSETS, batch_report, post_metrics, channel_analytics],
        asset_checks=CHECKS,
        jobs=[produce_topic, publish_topic, report_job, refresh_analytics],
        schedules=[analytics_schedule],
        sensors=[topic_batch_sensor, posting_slots_sensor, batch_pages_sensor],
        resources={**offline_resources(home), **(overrides or {})},
        executor=topic_executor(),
    )


defs = build_definitions()
