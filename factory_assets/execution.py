"""Which executor runs a topic's steps: in the run's own process (the default), or elsewhere."""

import dagster as dg


def topic_executor() -> dg.ExecutorDefinition:
    """One process per run, steps in order: a topic's stages are sequential anyway, and a
    subprocess per step would re-import the code (seconds each on 2 cores)."""
    return dg.in_process_executor
