"""The batch report's HTML page, opened in headless Chromium (Debian's `chromium` package).

A factory home with one batch taken in from a topic file the way the sensor and `factory run`
do (read_batch + record_batch), whose topics are then put into every state through real runs on
the instance, without rendering media: four done (a partitioned `video` asset writes a small
video.mp4 and a real 9:16 JPEG cover), one failed with a reason (a `script` step raising
dg.Failure), one running, one queued, one with no run yet, and one rejected row; plus an earlier
batch known only from its runs' `factory/batch` tag. The real `refresh_batch_report` job writes
the pages; Chromium loads them from disk.

Checks the DOM after scripts ran (every row with its status and reason, the thumbnails really
decoded, links into the Dagster UI, hostile topic text inert) and the screenshot (a real PNG of
the window size with content in it), which is kept in $FACTORY_TEST_ARTIFACTS (default
<repo>/.artifacts/batch_report.png).
"""

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image, ImageDraw, ImageStat

from factory_assets.definitions import build_definitions
from factory_assets.partitions import topics
from factory_core.costs import CostLine
from factory_core.run_tags import BATCH_TAG, new_batch_id, topic_run_tags
from factory_resources.project_db import project_engine, record_costs
from factory_resources.store import MediaStore
from factory_sensors.intake import read_batch, record_batch
from tests.conftest import QUIET, make_request

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1280, 1800)
DAGSTER_URL = "http://dagster.test:3000"
REPO = Path(__file__).resolve().parent.parent
# HTML entities in a topic file come out of intake as markup: the page must show it as text.
HOSTILE_TYPED = (
    "&lt;img src=x onerror=\"document.title=1\"&gt;&lt;script&gt;document.title='pwned'"
    "&lt;/script&gt; Tom & Jerry {{ 7*7 }}"
)
HOSTILE = (
    "<img src=x onerror=\"document.title=1\"><script>document.title='pwned'</script>"
    " Tom & Jerry {{ 7*7 }}"
)
DONE = ("How tides work", HOSTILE, "Why the sky is blue", "Почему кошки мурлычут")
FAILED = "How bees make honey"
FAILURE = "the LLM refused the topic: <img src=x onerror=alert(1)> is not a topic"
RUNNING, QUEUED, NO_RUN = (
    "The history of the bicycle",
    "Volcanoes under the sea",
    "How compilers work",
)
ADHOC = "Launched from the Dagster UI"
REJECTED = "لماذا السماء زرقاء"  # Arabic: no offline voice speaks it
TOPICS = [
    "How tides work", HOSTILE_TYPED, "Why the sky is blue", "Почему кошки мурлычут",
    FAILED, RUNNING, REJECTED, QUEUED, NO_RUN,
]  # fmt: skip
COLOURS = ((40, 90, 200), (200, 80, 40), (30, 150, 90), (150, 60, 170))
COLOUR_OF: dict[str, tuple[int, int, int]] = {}  # topic key -> its cover's colour


@dg.asset(name="video", partitions_def=topics)
def fake_video(context: dg.AssetExecutionContext) -> None:
    """Stands in for the render: the files the report reads, not a real video."""
    folder = MediaStore().topic_dir(context.partition_key)
    (folder / "video.mp4").write_bytes(b"\0" * 1024)
    (folder / "render_plan.json").write_text('{"total_s": 31.5}')
    cover = Image.new("RGB", (1080, 1920), COLOUR_OF[context.partition_key])
    draw = ImageDraw.Draw(cover)
    for y in range(0, 1920, 120):  # stripes: a picture with detail, like a real cover
        draw.rectangle((0, y, 1080, y + 40), fill=(255, 255, 255))
    draw.ellipse((240, 660, 840, 1260), fill=(250, 210, 60))
    cover.save(folder / "cover_9x16.jpg", quality=85)


@dg.asset(name="script", partitions_def=topics)
def failing_script() -> None:
    raise dg.Failure(description=FAILURE)


@dg.op
def step() -> None:
    pass


@dg.job
def placeholder_job() -> None:
    step()


@dataclass
class Report:
    home: Path
    batch_id: str
    page: Path
    keys: dict[str, str]  # topic -> key
    runs: dict[str, str]  # topic -> run id


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    home = tmp_path_factory.mktemp("factory-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FACTORY_HOME", str(home))
        env.setenv("FACTORY_DAGSTER_URL", DAGSTER_URL)
        env.delenv("DAGSTER_HOME", raising=False)
        with dg.instance_for_test() as instance:
            yield _make_report(home, instance)


def _make_report(home: Path, instance: dg.DagsterInstance) -> Report:
    store = MediaStore(home=str(home))
    # An earlier batch known only from its runs' tag (launched from elsewhere, no record).
    adhoc = make_request("demo", ADHOC)
    store.save_request(adhoc)
    instance.add_dynamic_partitions(topics.name, [adhoc.key])
    COLOUR_OF[adhoc.key] = (90, 90, 90)
    dg.materialize(
        [fake_video], partition_key=adhoc.key, instance=instance, run_config=QUIET,
        tags={**topic_run_tags("default", "demo"), BATCH_TAG: "adhoc-1"},
    )  # fmt: skip
    source = home / "incoming.yaml"  # JSON is YAML
    source.write_text(json.dumps([{"topic": t} for t in TOPICS]), encoding="utf-8")
    batch = read_batch(source, "demo", store, instance)
    keys = {r.topic: r.key for r in batch.accepted}
    assert set(keys) == {*DONE, FAILED, RUNNING, QUEUED, NO_RUN}, keys
    instance.add_dynamic_partitions(topics.name, list(keys.values()))
    batch_id = new_batch_id("demo", source.name)
    record_batch(store, batch, batch_id, "default", source="inbox")
    tags = topic_run_tags("default", "demo", batch_id)
    runs: dict[str, str] = {}
    for topic, colour in zip(DONE, COLOURS, strict=True):
        COLOUR_OF[keys[topic]] = colour
        result = dg.materialize(
            [fake_video], partition_key=keys[topic], instance=instance, tags=tags, run_config=QUIET
        )
        runs[topic] = result.run_id
    failed = dg.materialize(
        [failing_script],
        partition_key=keys[FAILED],
        instance=instance,
        tags=tags,
        raise_on_error=False,
        run_config=QUIET,
    )
    assert not failed.success
    runs[FAILED] = failed.run_id
    for topic, status in ((RUNNING, dg.DagsterRunStatus.STARTED),
                          (QUEUED, dg.DagsterRunStatus.NOT_STARTED)):  # fmt: skip
        run = instance.create_run_for_job(
            placeholder_job, status=status, tags={**tags, "dagster/partition": keys[topic]}
        )
        runs[topic] = run.run_id
    record_costs(
        project_engine(home),
        [
            CostLine(provider="openai", model="gpt", units=1000, unit="token",
                     unit_price_usd=0.00001, amount_usd=0.0125, topic_key=keys[t], stage="script")
            for t in (*DONE, FAILED)
        ],
    )  # fmt: skip
    result = (
        build_definitions(home=str(home))
        .resolve_job_def("refresh_batch_report")
        .execute_in_process(instance=instance, run_config=QUIET)
    )
    assert result.success
    meta = result.asset_materializations_for_node("batch_report")[0].metadata
    page = Path(meta["html_latest_batch"].value)
    assert page == home / "reports" / "batches" / f"{batch_id}.html"
    assert Path(meta["html_index"].value).is_file()
    return Report(home=home, batch_id=batch_id, page=page, keys=keys, runs=runs)


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: this test opens the batch report in headless Chromium. "
            "Install it with `make setup-browser` (Debian's chromium package).",
            pytrace=False,
        )
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


class Dom(HTMLParser):
    """The elements the checks need, from Chromium's serialized DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.rows: list[dict[str, str]] = []  # data-* of each topic row, plus its text
        self.images: list[dict[str, str]] = []
        self.links: list[dict[str, str]] = []
        self.scripts = 0
        self.title = ""
        self._in: str | None = None
        self._cell = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = values
        elif tag == "tr" and "topic-row" in values.get("class", ""):
            self.rows.append({**values, "text": ""})
            self._in = "row"
        elif tag == "img":
            self.images.append(values)
        elif tag == "a":
            self.links.append(values)
        elif tag == "script":
            self.scripts += 1
        elif tag == "title":
            self._in = "title"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("tr", "title"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "row":
            self.rows[-1]["text"] += data
        elif self._in == "title":
            self.title += data


@pytest.fixture(scope="module")
def dom(report: Report, tmp_path_factory: pytest.TempPathFactory) -> Dom:
    profile = tmp_path_factory.mktemp("chromium-dom")
    # The virtual-time budget lets the page load its images and run its script before the dump.
    done = _chromium(
        "--virtual-time-budget=5000", "--dump-dom", report.page.as_uri(), profile=profile
    )
    parsed = Dom()
    parsed.feed(done.stdout)
    return parsed


def test_every_topic_row_has_its_status_and_reason(report: Report, dom: Dom) -> None:
    by_key = {row["data-key"]: row for row in dom.rows}
    expected = {
        **{report.keys[t]: "done" for t in DONE},
        report.keys[FAILED]: "failed",
        report.keys[RUNNING]: "running",
        report.keys[QUEUED]: "pending",
        report.keys[NO_RUN]: "pending",
    }
    assert {k: by_key[k]["data-status"] for k in expected} == expected
    rejected = [row for row in dom.rows if row["data-status"] == "rejected"]
    assert len(rejected) == 1 and REJECTED in rejected[0]["text"]
    assert "not in English or Russian" in rejected[0]["text"]
    assert len(dom.rows) == len(expected) + 1
    # The failure's reason, as text: the markup in it was not parsed into an element.
    assert f"script: {FAILURE}" in by_key[report.keys[FAILED]]["text"]
    assert not any(img.get("src") == "x" for img in dom.images)
    assert "{{ 7*7 }}" in by_key[report.keys[HOSTILE]]["text"]  # not evaluated either
    # Hostile topic text is shown as it was typed and ran nothing.
    assert HOSTILE in by_key[report.keys[HOSTILE]]["text"]
    assert "pwned" not in dom.title and "demo" in dom.title
    assert dom.scripts == 1  # the page's own
    assert DONE[3] in by_key[report.keys[DONE[3]]]["text"]


def test_thumbnails_loaded_in_the_browser(report: Report, dom: Dom) -> None:
    thumbs = [img for img in dom.images if "thumb" in img.get("class", "")]
    assert len(thumbs) == len(DONE)
    assert all(img.get("data-state") == "loaded" for img in thumbs), thumbs
    assert all(int(img["data-natural-width"]) > 100 for img in thumbs)
    assert dom.body.get("data-images-loaded") == str(len(DONE))
    # Small copies next to the page, not the full-size covers.
    for img in thumbs:
        small = report.page.parent / img["src"]
        assert small.is_file() and small.stat().st_size < 30_000
        with Image.open(small) as picture:
            assert picture.size == (216, 384)


def test_links_point_at_the_dagster_ui(report: Report, dom: Dom) -> None:
    hrefs = [link["href"] for link in dom.links if "href" in link]
    for topic, run_id in report.runs.items():
        assert f"{DAGSTER_URL}/runs/{run_id}" in hrefs, topic
    for key in report.keys.values():
        assert f"{DAGSTER_URL}/assets/video?view=partitions&partition={key}" in hrefs
    batch_runs = next(link["href"] for link in dom.links if link.get("id") == "batch-runs")
    assert batch_runs == (f"{DAGSTER_URL}/runs?q%5B%5D=tag%3Afactory%2Fbatch%3D{report.batch_id}")
    assert "index.html" in hrefs
    assert all(h.startswith((DAGSTER_URL, "index.html", "../")) for h in hrefs), hrefs


def test_screenshot_is_kept_and_shows_the_page(
    report: Report, tmp_path_factory: pytest.TempPathFactory
) -> None:
    artifacts = Path(os.environ.get("FACTORY_TEST_ARTIFACTS") or REPO / ".artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "batch_report.png"
    shot.unlink(missing_ok=True)
    _chromium(
        "--virtual-time-budget=5000",
        f"--screenshot={shot}",
        report.page.as_uri(),
        profile=tmp_path_factory.mktemp("chromium-shot"),
    )
    print(f"batch report screenshot: {shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as picture:
        assert picture.format == "PNG"
        assert picture.size == WINDOW
        rgb = picture.convert("RGB")
    # Not one colour: text, badges and thumbnails give spread and many distinct colours.
    assert max(ImageStat.Stat(rgb).stddev) > 20
    assert len(rgb.getcolors(maxcolors=1 << 20) or []) > 500
    # The thumbnails' own colours are on screen (the grid rendered the covers).
    colours = {c for _, c in rgb.getcolors(maxcolors=1 << 20) or []}
    for colour in COLOURS:
        assert any(sum(abs(a - b) for a, b in zip(c, colour, strict=True)) < 30 for c in colours)


def test_index_lists_every_batch(report: Report) -> None:
    index = (report.page.parent / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<meta http-equiv=\"refresh\" content=\"\d+\">", index)  # one still runs
    # Newest first: the file's batch, then the one known only from its runs' tag.
    assert re.findall(r'data-batch="([^"]+)"', index) == [report.batch_id, "adhoc-1"]
    adhoc = (report.page.parent / "adhoc-1.html").read_text(encoding="utf-8")
    assert ADHOC in adhoc and 'data-status="done"' in adhoc
    assert "http-equiv" not in adhoc  # finished: no reload
