"""What paid calls cost: a dated price table per provider and model, cost lines, estimates.

Pure. Prices are list prices read on `PRICES_AS_OF`; the price list in
`$FACTORY_HOME/prices.yaml` overrides any of them (see README), because providers change prices and plans.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

PRICES_AS_OF = "2026-11-01"


class Price(BaseModel):
    """The price of one unit of a provider's model."""

    provider: str
    model: str
    unit: str = Field(description="What is counted: input_token, output_token, character, ...")
    usd_per_unit: float = Field(ge=0)
    source: str = ""


def _p(provider: str, model: str, unit: str, per_unit: float, source: str) -> Price:
    return Price(provider=provider, model=model, unit=unit, usd_per_unit=per_unit, source=source)


DEFAULT_PRICES: tuple[Price, ...] = (
    # OpenAI list prices per token (USD per 1M tokens / 1e6).
    _p("openai", "gpt-4o-mini", "input_token", 0.15e-6, "openai.com/api/pricing"),
    _p("openai", "gpt-4o-mini", "output_token", 0.60e-6, "openai.com/api/pricing"),
    _p("openai", "gpt-4o", "input_token", 2.50e-6, "openai.com/api/pricing"),
    _p("openai", "gpt-4o", "output_token", 10.0e-6, "openai.com/api/pricing"),
    _p("openai", "gpt-4.1-mini", "input_token", 0.40e-6, "openai.com/api/pricing"),
    _p("openai", "gpt-4.1-mini", "output_token", 1.60e-6, "openai.com/api/pricing"),
    _p("openai", "whisper-1", "audio_second", 0.006 / 60, "openai.com/api/pricing"),
    # ElevenLabs: characters of text (Creator plan overage, per character).
    _p("elevenlabs", "eleven_multilingual_v2", "character", 0.30e-3, "elevenlabs.io/pricing"),
    _p("elevenlabs", "eleven_flash_v2_5", "character", 0.15e-3, "elevenlabs.io/pricing"),
    _p("elevenlabs", "eleven_turbo_v2_5", "character", 0.15e-3, "elevenlabs.io/pricing"),
    _p("elevenlabs", "ivc", "voice", 0.0, "elevenlabs.io/pricing (included in plan)"),
    # fal.ai: per megapixel of output.
    _p("fal", "fal-ai/flux/schnell", "megapixel", 0.003, "fal.ai/models/fal-ai/flux/schnell"),
    _p("fal", "fal-ai/flux/dev", "megapixel", 0.025, "fal.ai/models/fal-ai/flux/dev"),
    _p("fal", "fal-ai/flux-pulid", "megapixel", 0.033, "fal.ai/models/fal-ai/flux-pulid"),
    _p("fal", "fal-ai/flux-pro/kontext", "image", 0.04, "fal.ai/models/fal-ai/flux-pro/kontext"),
)


class UnknownPriceError(LookupError):
    pass


class PriceTable(BaseModel):
    as_of: str = PRICES_AS_OF
    prices: list[Price] = Field(default_factory=lambda: list(DEFAULT_PRICES))

    def with_overrides(self, overrides: Iterable[Price]) -> PriceTable:
        table = {(p.provider, p.model, p.unit): p for p in self.prices}
        for price in overrides:
            table[(price.provider, price.model, price.unit)] = price
        return PriceTable(as_of=self.as_of, prices=list(table.values()))

    def price(self, provider: str, model: str, unit: str) -> Price:
        for p in self.prices:
            if (p.provider, p.model, p.unit) == (provider, model, unit):
                return p
        raise UnknownPriceError(
            f"no price for {provider} {model} per {unit}; add it to $FACTORY_HOME/prices.yaml "
            f"(provider, model, unit, usd_per_unit) so the call can be accounted for"
        )


class CostLine(BaseModel):
    """One paid call (or one part of it, e.g. input tokens), as the ledger records it."""

    provider: str
    model: str
    units: float = Field(ge=0)
    unit: str
    unit_price_usd: float = Field(ge=0)
    amount_usd: float = Field(ge=0)
    topic_key: str = ""
    stage: str = ""
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def cost_line(
    table: PriceTable, provider: str, model: str, unit: str, units: float, *,
    topic_key: str = "", stage: str = "",
) -> CostLine:  # fmt: skip
    price = table.price(provider, model, unit)
    return CostLine(
        provider=provider, model=model, units=units, unit=unit,
        unit_price_usd=price.usd_per_unit, amount_usd=round(units * price.usd_per_unit, 6),
        topic_key=topic_key, stage=stage,
    )  # fmt: skip


def total_usd(lines: Iterable[CostLine]) -> float:
    return round(sum(line.amount_usd for line in lines), 6)
