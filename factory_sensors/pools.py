"""Pool rows written once, by the sensor, before a batch's runs start.

Dagster creates a pool's row (at `concurrency.pools.default_limit`) the first time a step of
that pool asks for a slot. When several runs of a new batch reach that moment together on
PostgreSQL, one insert wins and the others fail inside an aborted transaction
(InFailedSqlTransaction in `initialize_concurrency_limit_to_default`), failing their runs. The
sensor evaluates in one process, so creating the rows there, before it requests any run,
leaves the runs nothing to race on. Limits an operator set (`dagster instance concurrency set`)
are left as they are.
"""

import dagster as dg

# Every `pool=` the topic assets use (tests/test_pools.py keeps this in step with them).
TOPIC_POOLS = ("llm", "tts", "images", "render")


def ensure_pool_rows(instance: dg.DagsterInstance) -> list[str]:
    """Creates the missing pool rows at the instance's default limit; returns those created."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    if instance.global_op_concurrency_default_limit is None:
        return []  # no default: Dagster leaves unknown pools unlimited, nothing to create
    known = storage.get_concurrency_keys()
    created = [pool for pool in TOPIC_POOLS if pool not in known]
    for pool in created:
        storage.initialize_concurrency_limit_to_default(pool)
    return created
