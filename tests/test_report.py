"""``tuneloop report``: one self-contained page, checked in headless Chromium (no console
errors, no network, every chart drawn), and the same page at ``/`` of the server."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tuneloop.config import CanaryConfig
from tuneloop.cycle.run import run_cycle, statuses
from tuneloop.flows.register import registry_for
from tuneloop.report.collect import collect
from tuneloop.report.page import write_report
from tuneloop.serve.canary.controller import CanaryController
from tuneloop.state.canary import read_state
from tuneloop.state.serving_log import FeedbackRow, ResponseRow, ServingLog
from tuneloop.workspace import Workspace

from support.clirun import run
from support.data import chats, write_jsonl
from support.workspaces import loop_ws

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def live_traffic(log: ServingLog, canary_id: str, version: str) -> None:
    """60 requests per arm; users dislike half the canary's answers, 1 in 20 of production's."""
    rows: list[ResponseRow | FeedbackRow] = []
    now = time.time()
    for i in range(120):
        arm = "canary" if i % 2 else "production"
        rid = f"{canary_id}-{i}"
        rows.append(ResponseRow(rid, "local", [{"role": "user", "content": "hi"}], arm,
                                version if arm == "canary" else "1", answer="hello",
                                canary_id=canary_id, latency_s=0.2 + 0.001 * i,
                                created_unix=now - 120 + i))  # fmt: skip
        down = i % 4 == 1 if arm == "canary" else i % 40 == 0
        rows.append(FeedbackRow(f"f-{rid}", rid, "local", thumbs="down" if down else "up"))
    log.append(rows)


@pytest.fixture(scope="module")
def looped(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Workspace:
    """Two cycles: v1 promoted; v2 a canary that live users dislike, rolled back."""
    root = tmp_path_factory.mktemp("report")
    ws = loop_ws(root / "ws", tiny_base, chats("a", 30))
    assert run_cycle(ws)["end"]["outcome"] == "promoted"
    ws = ws.configure({"cycle.release": "canary"})
    write_jsonl(ws.root / "inbox" / "week2.jsonl", chats("b", 30))
    assert run_cycle(ws)["end"]["outcome"] == "canary"
    current = read_state(ws.serve_dir)
    assert current is not None and current.version == "2"
    log = ServingLog(ws.serving_log_path)
    live_traffic(log, current.canary_id, current.version)
    cfg = CanaryConfig(interval_s=0.01, min_requests=50, min_feedback=20)
    controller = CanaryController(ws.serve_dir, registry_for(ws), log, cfg, lambda: None,
                                  lambda: None)  # fmt: skip
    for _ in range(2):
        controller.run_once()
    log.close()
    run("cycle", "--if-due", "-w", ws.root, cwd=root)  # a trigger evaluation for the chart
    return ws


def test_report_collects_the_loop(looped: Workspace) -> None:
    data = collect(looped)
    assert [v["version"] for v in data.versions] == ["1", "2"]
    assert data.aliases["production"] == "1"
    assert data.versions[1]["canary"]["outcome"] == "rolled_back"
    [canary] = data.canaries
    assert [e["action"] for e in canary["events"]] == ["start", "rollback"]
    assert set(canary["series"]) == {"production", "canary"}
    assert len(data.runs) == 2 and all(r["eval_loss"] for r in data.runs.values())
    assert data.base_scores and data.versions[0]["scores"]
    # per category: the stand-in sets' refuse and comply items, the toxicity suite's attributes
    safety = data.versions[0]["safety"]
    assert set(safety) == {"harmful_compliance", "over_refusal", "toxicity"}, safety
    assert set(safety["toxicity"]) <= {"insult", "threat"} and data.base_safety
    # the tiny model answers every harmful request: the gate says its suite cannot see erosion
    assert any("cannot detect safety erosion" in w for w in data.versions[0]["gate"]["warnings"])
    assert len(data.cycles) == 2 and data.triggers
    assert [(s["end"] or {}).get("canary_now") for s in statuses(looped)] == [None, "rolled_back"]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (`make chromium`)")
def test_report_page_in_headless_chromium(looped: Workspace, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    path = write_report(looped, tmp_path / "report.html")
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
        charts = page.evaluate(CHART_STATS)
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    assert [u for u in requests if not u.startswith("file://")] == []  # nothing fetched
    titles = " | ".join(c["title"] for c in charts)
    for wanted in ("Eval scores", "Safety by category", "Loss per training run", "Lineage",
                   "Ingest per cycle",
                   "Seconds per stage", "Trigger checks", "Canary v2"):  # fmt: skip
        assert wanted in titles, titles
    assert all(c["width"] > 300 and c["height"] > 200 and c["marks"] > 0 for c in charts), charts
    assert shot.stat().st_size > 50_000


CHART_STATS = """
() => [...document.querySelectorAll('.js-plotly-plot')].map(el => {
  const box = el.getBoundingClientRect();
  const title = el.querySelector('.gtitle');
  return {title: title ? title.textContent : '', width: box.width, height: box.height,
          marks: el.querySelectorAll('.scatterlayer .trace, .barlayer .trace').length};
})
"""


def test_the_server_shows_the_report_at_the_root(looped: Workspace, tiny_base: Path) -> None:
    from fastapi.testclient import TestClient

    from tuneloop.serve.app import create_app
    from tuneloop.serve.server import services_for

    backend: Any = type("NoBackend", (), {"base_name": "tiny", "stats": lambda self: {}})()
    app = create_app(services_for(looped, backend, None))
    page = TestClient(app).get("/")  # no lifespan: the route needs no model
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Canary v2" in page.text and "rolled_back" in page.text
