"""Prices, cost lines and the ledger: pure pricing, overrides, and the ledger on SQLite and on
the real PostgreSQL (our own tables, beside Dagster's)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from factory_core.costs import (
    PRICES_AS_OF,
    CostLine,
    Price,
    PriceTable,
    UnknownPriceError,
    cost_line,
    total_usd,
)
from factory_resources.project_db import (
    cost_totals,
    engine_for,
    price_table,
    record_costs,
    repriced,
    topic_costs,
)

from .test_postgres import postgres_url  # noqa: F401  (fixture)


def test_default_prices_are_dated_and_price_each_unit() -> None:
    table = PriceTable()
    assert table.as_of == PRICES_AS_OF
    line = cost_line(table, "openai", "gpt-4o-mini", "input_token", 1000, topic_key="t", stage="s")
    assert line.amount_usd == pytest.approx(1000 * 0.15e-6)
    assert line.unit_price_usd == pytest.approx(0.15e-6)
    fal = cost_line(table, "fal", "fal-ai/flux/schnell", "megapixel", 1.03)
    assert fal.amount_usd == pytest.approx(0.00309)
    assert total_usd([line, fal]) == pytest.approx(line.amount_usd + fal.amount_usd)


def test_unknown_model_names_itself_and_the_fix() -> None:
    with pytest.raises(
        UnknownPriceError,
        match=r"no price for openai my-model per input_token; add it to .*prices.yaml",
    ):
        PriceTable().price("openai", "my-model", "input_token")


def test_overrides_replace_and_add_prices(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text(
        "- {provider: elevenlabs, model: eleven_multilingual_v2, unit: character, usd_per_unit: 0.0002}\n"
        "- {provider: openai, model: llama3, unit: input_token, usd_per_unit: 0}\n",
        encoding="utf-8",
    )
    table = price_table(tmp_path)
    assert table.price("elevenlabs", "eleven_multilingual_v2", "character").usd_per_unit == 0.0002
    assert table.price("openai", "llama3", "input_token").usd_per_unit == 0
    assert table.price("openai", "gpt-4o", "output_token").usd_per_unit == 10e-6  # untouched
    line = CostLine(provider="elevenlabs", model="eleven_multilingual_v2", units=1000,
                    unit="character", unit_price_usd=0.0003, amount_usd=0.3)  # fmt: skip
    assert repriced([line], table)[0].amount_usd == pytest.approx(0.2)


def test_a_broken_price_file_says_where_and_what_is_needed(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text("- {provider: openai}\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"(?s)prices.yaml is not a valid price list.*usd_per_unit"
    ):
        price_table(tmp_path)


def _lines(key: str) -> list[CostLine]:
    table = PriceTable()
    return [
        cost_line(table, "openai", "gpt-4o-mini", "input_token", 900, topic_key=key, stage="script"),
        cost_line(table, "openai", "gpt-4o-mini", "output_token", 400, topic_key=key, stage="script"),
        cost_line(table, "elevenlabs", "eleven_multilingual_v2", "character", 480, topic_key=key,
                  stage="voiceover"),
    ]  # fmt: skip


def _check_ledger(url: str) -> None:
    engine = engine_for(url)
    key, other = f"demo--a-{uuid.uuid4().hex[:8]}", f"demo--b-{uuid.uuid4().hex[:8]}"
    record_costs(engine, _lines(key), owner="alice")
    record_costs(engine, _lines(other)[:1], owner="bob")
    saved = topic_costs(engine, key)
    assert [line.stage for line in saved] == ["script", "script", "voiceover"]
    assert total_usd(saved) == pytest.approx(total_usd(_lines(key)))
    totals = cost_totals(engine)
    assert totals[key] == pytest.approx(total_usd(_lines(key)), abs=1e-6)
    assert totals[other] == pytest.approx(_lines(other)[0].amount_usd, abs=1e-6)


def test_ledger_on_sqlite(tmp_path: Path) -> None:
    _check_ledger(f"sqlite:///{tmp_path / 'factory.db'}")


@pytest.mark.postgres
def test_ledger_on_postgres(postgres_url: str) -> None:  # noqa: F811
    _check_ledger(postgres_url)


def test_price_model_rejects_negative_prices() -> None:
    with pytest.raises(ValueError):
        Price(provider="x", model="y", unit="z", usd_per_unit=-1)
