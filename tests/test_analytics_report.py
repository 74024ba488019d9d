"""Charts and the HTML report: valid PNGs of a sensible size that change with the data and
render Cyrillic, and a report that carries the numbers and escapes whatever a topic says."""

from __future__ import annotations

import base64
import html
import io
import re
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from factory_core.analytics import Analytics, PostFacts, analyse, snapshots_frame
from factory_resources.analytics_report import CHART_NAMES, write_charts, write_html_report

from .test_analytics import START, generate_history

EVIL = "<script>alert(1)</script>"


def analytics(seed: int = 7, evil: bool = False) -> Analytics:
    rows, facts = generate_history(seed=seed, channel="наука")
    if evil:
        facts = [
            f.model_copy(update={"topic": EVIL}) if f.post_id.endswith("-0") else f for f in facts
        ]
    return analyse(snapshots_frame(rows), facts, tz="Europe/Moscow")


@dataclass(frozen=True)
class Drawn:
    analytics: Analytics
    charts: dict[str, Path]
    warnings: list[str]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> Drawn:
    """One set of charts for the module (drawing takes a second), with a Russian title and a
    hostile topic, and the warnings matplotlib gave while drawing them."""
    result = analytics(evil=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        charts = write_charts(
            result,
            tmp_path_factory.mktemp("charts"),
            titles={"top_posts": "Лучшие ролики канала «Наука»"},
        )
    return Drawn(result, charts, [str(w.message) for w in caught])


def test_charts_are_valid_pngs_of_a_sensible_size(drawn: Drawn) -> None:
    assert set(drawn.charts) == set(CHART_NAMES)
    for name, path in drawn.charts.items():
        assert path.name == f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size == (800, 450)
            # Something is drawn: far from a blank canvas.
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 20


def test_charts_differ_when_the_data_differs_and_repeat_when_it_does_not(
    drawn: Drawn, tmp_path: Path
) -> None:
    titles = {"top_posts": "Лучшие ролики канала «Наука»"}
    again = write_charts(analytics(evil=True), tmp_path / "again", titles=titles)
    other = write_charts(analytics(seed=8, evil=True), tmp_path / "other", titles=titles)
    for name in CHART_NAMES:
        assert drawn.charts[name].read_bytes() == again[name].read_bytes()
        assert drawn.charts[name].read_bytes() != other[name].read_bytes()


def test_cyrillic_titles_render_without_missing_glyphs(drawn: Drawn) -> None:
    # The channel's name (наука) is in every default title, and one title is all Russian.
    assert [w for w in drawn.warnings if "missing from" in w] == []


def test_no_metrics_draws_nothing_and_the_report_says_so(tmp_path: Path) -> None:
    empty = analyse(snapshots_frame())
    assert write_charts(empty, tmp_path / "charts") == {}
    report = write_html_report(empty, tmp_path / "report.html", title="Канал «Наука»")
    text = report.read_text(encoding="utf-8")
    assert "no metrics yet" in text.lower()
    assert "Канал «Наука»" in text
    assert "<table" not in text


def test_report_carries_the_numbers_and_escapes_topics(drawn: Drawn, tmp_path: Path) -> None:
    result, charts = drawn.analytics, drawn.charts
    out = write_html_report(result, tmp_path / "report" / "index.html", charts=charts)
    raw = out.read_bytes()
    text = raw.decode("utf-8")  # UTF-8, Russian as it is
    assert '<meta charset="utf-8">' in text
    assert "наука" in text
    assert EVIL not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text
    # The numbers: channel totals, each platform's views, the best post.
    channel = result.channels.iloc[0]
    assert f"{channel['views']:,.0f}" in text
    for views in result.platforms["views"]:
        assert f"{views:,.0f}" in text
    assert f"{result.best.by_views.iloc[0]['views']:,.0f}" in text
    assert result.status in text
    assert result.growth.note and html.escape(result.growth.note) in text
    assert result.recommendations
    for rec in result.recommendations:
        assert html.escape(rec.sentence) in text
    # Self-contained: the charts are inside the file, byte for byte.
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(
        p.read_bytes() for p in charts.values()
    )
    with Image.open(io.BytesIO(base64.b64decode(embedded[0]))) as image:
        assert image.format == "PNG"


def test_report_can_link_charts_relatively(drawn: Drawn, tmp_path: Path) -> None:
    charts = drawn.charts
    out = write_html_report(
        drawn.analytics, tmp_path / "report" / "index.html", charts=charts, embed_images=False
    )
    sources = re.findall(r'<img src="([^"]+)"', out.read_text(encoding="utf-8"))
    assert len(sources) == len(charts) and all(s.startswith("../") for s in sources)
    assert [Path(s).name for s in sources] == [f"{name}.png" for name in charts]
    assert all((out.parent / src).resolve().exists() for src in sources)


@pytest.mark.parametrize("topic", [EVIL, "Quotes \" and ' & ampersands"])
def test_every_text_cell_is_escaped(tmp_path: Path, topic: str) -> None:
    rows = [{
        "owner": "o", "channel": "c&<b>", "topic_key": "t", "platform": "youtube",
        "post_id": "<i>id</i>", "fetched_at": START + timedelta(days=1), "views": 4321,
        "likes": 10,
    }]  # fmt: skip
    facts = [
        PostFacts(
            topic_key="t", channel="c&<b>", platform="youtube", post_id="<i>id</i>",
            published_at=START, topic=topic, hook="<b>Why?</b>", duration_s=30,
        )
    ]  # fmt: skip
    text = write_html_report(analyse(snapshots_frame(rows), facts), tmp_path / "r.html").read_text(
        encoding="utf-8"
    )
    assert topic not in text
    assert html.escape(topic) in text
    assert "<i>" not in text and "<b>" not in text
    assert "c&amp;&lt;b&gt;" in text and "4,321" in text
