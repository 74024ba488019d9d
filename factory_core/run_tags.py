"""The tags every topic run carries, however it was launched (sensor, CLI, API), so the Dagster
UI's run list filters by user and by channel. Pure: the API imports it without Dagster."""

OWNER_TAG = "factory/owner"
CHANNEL_TAG = "factory/channel"


def topic_run_tags(owner: str, channel: str) -> dict[str, str]:
    return {OWNER_TAG: owner, CHANNEL_TAG: channel}
