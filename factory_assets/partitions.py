"""The one partitions definition every topic stage shares: one dynamic partition per topic."""

import dagster as dg

topics = dg.DynamicPartitionsDefinition(name="topics")
