"""The project's own tables (not Dagster's): voices, characters, their images, the cost ledger.

SQLAlchemy Core over one URL: `FACTORY_DB_URL` (PostgreSQL in production and tests, e.g.
postgresql://user@127.0.0.1:5432/factory), else SQLite in `$FACTORY_HOME/factory.db`. The
schema comes from the Alembic migrations in factory_resources/migrations. Every
row that belongs to someone carries its `owner`; every query here filters on it, so one
owner never sees another's voices or characters.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from factory_core.costs import CostLine, Price, PriceTable, UnknownPriceError

metadata = sa.MetaData()


def _now() -> datetime:
    return datetime.now(UTC)


voices = sa.Table(
    "voices", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(120), nullable=False, index=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),  # elevenlabs | offline
    sa.Column("provider_voice_id", sa.String(120)),
    sa.Column("language", sa.String(8), nullable=False, server_default="en"),
    sa.Column("status", sa.String(16), nullable=False),  # pending | ready | failed
    sa.Column("error", sa.Text),
    sa.Column("settings", sa.JSON, nullable=False, default=dict),
    sa.Column("samples", sa.JSON, nullable=False, default=list),
    sa.Column("usage_count", sa.Integer, nullable=False, default=0),
    # Letters per second of speech at speed 1, learned from the voice's own audio (a
    # calibration phrase when cloned, then every narration): scripts are sized with it.
    sa.Column("chars_per_second", sa.Float),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, default=_now),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, default=_now, onupdate=_now),
    sa.UniqueConstraint("owner", "name", name="uq_voices_owner_name"),
)  # fmt: skip

characters = sa.Table(
    "characters", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(120), nullable=False, index=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("reference_file", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # ready | failed
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, default=_now),
    sa.UniqueConstraint("owner", "name", name="uq_characters_owner_name"),
)  # fmt: skip

character_images = sa.Table(
    "character_images", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("character_id", sa.String(64), sa.ForeignKey("characters.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("owner", sa.String(120), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # variation | scene
    sa.Column("file", sa.Text, nullable=False),
    sa.Column("pose", sa.String(60), nullable=False, default=""),
    sa.Column("emotion", sa.String(60), nullable=False, default=""),
    sa.Column("background", sa.String(120), nullable=False, default=""),
    sa.Column("topic_key", sa.String(120), nullable=False, default=""),
    sa.Column("similarity", sa.Float),  # None: no face found to compare
    sa.Column("measure", sa.String(40), nullable=False, default=""),
    sa.Column("flagged", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, default=_now),
)  # fmt: skip

cost_lines = sa.Table(
    "cost_lines", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, default=_now),
    sa.Column("owner", sa.String(120), nullable=False, default="", index=True),
    sa.Column("topic_key", sa.String(120), nullable=False, default="", index=True),
    sa.Column("stage", sa.String(40), nullable=False, default=""),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("model", sa.String(120), nullable=False),
    sa.Column("unit", sa.String(40), nullable=False),
    sa.Column("units", sa.Float, nullable=False),
    sa.Column("unit_price_usd", sa.Float, nullable=False),
    sa.Column("amount_usd", sa.Float, nullable=False),
)  # fmt: skip


def database_url(home: Path | None = None) -> str:
    url = os.environ.get("FACTORY_DB_URL", "").strip()
    if url:
        return url
    from factory_resources.store import default_home

    root = home or default_home()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'factory.db'}"


_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """The engine for `url`, its database brought to the newest migration (once per URL per
    process; factory_resources.migrations locks against other processes doing the same)."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            from factory_resources.migrations import upgrade

            engine = sa.create_engine(url, pool_pre_ping=True, future=True)
            upgrade(engine)
            _engines[url] = engine
        return engine


def project_engine(home: Path | None = None) -> sa.Engine:
    return engine_for(database_url(home))


def record_costs(engine: sa.Engine, lines: list[CostLine], owner: str = "") -> None:
    if not lines:
        return
    with engine.begin() as conn:
        conn.execute(
            cost_lines.insert(),
            [{**line.model_dump(), "owner": owner} for line in lines],
        )


def topic_costs(engine: sa.Engine, topic_key: str) -> list[CostLine]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(cost_lines)
            .where(cost_lines.c.topic_key == topic_key)
            .order_by(cost_lines.c.id)
        ).mappings()
        return [CostLine.model_validate({k: v for k, v in row.items() if k in CostLine.model_fields})
                for row in rows]  # fmt: skip


def cost_totals(engine: sa.Engine) -> dict[str, float]:
    """USD spent per topic, from the ledger, in one query."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(cost_lines.c.topic_key, sa.func.sum(cost_lines.c.amount_usd)).group_by(
                cost_lines.c.topic_key
            )
        )
        return {key: round(float(total or 0.0), 6) for key, total in rows}


def price_table(home: Path | None = None) -> PriceTable:
    """The dated default prices, with the overrides in `$FACTORY_HOME/prices.yaml` (a list of
    {provider, model, unit, usd_per_unit}) on top: plans and prices change, users know theirs."""
    import yaml

    from factory_resources.store import default_home

    path = (home or default_home()) / "prices.yaml"
    table = PriceTable()
    if not path.exists():
        return table
    try:
        rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        return table.with_overrides(Price.model_validate(row) for row in rows)
    except Exception as exc:  # a broken override file must say where it is broken
        raise ValueError(
            f"{path} is not a valid price list ({exc}); each entry needs provider, model, "
            "unit and usd_per_unit"
        ) from exc


def repriced(lines: list[CostLine], table: PriceTable) -> list[CostLine]:
    """Cost lines at the table's prices (the overrides win over what a resource assumed)."""
    out = []
    for line in lines:
        try:
            unit_price = table.price(line.provider, line.model, line.unit).usd_per_unit
        except UnknownPriceError:
            unit_price = line.unit_price_usd
        out.append(line.model_copy(update={
            "unit_price_usd": unit_price, "amount_usd": round(line.units * unit_price, 6)
        }))  # fmt: skip
    return out
