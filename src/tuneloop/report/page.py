"""The report as one self-contained HTML page: plotly's JavaScript inlined, no network needed.

The top of the page answers the questions people come with (what serves now, what the last
cycles did and why); the charts below show how it got there.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from tuneloop.jsonl import atomic_writer
from tuneloop.report import figures
from tuneloop.report.collect import ReportData, collect
from tuneloop.workspace import Workspace

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 24px;
       color: #222; }
h1 { margin-bottom: 4px; } .sub { color: #666; margin-top: 0; }
.facts { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.fact { background: #f4f6f8; border-radius: 8px; padding: 12px 16px; min-width: 170px; }
.fact b { display: block; font-size: 22px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 24px; font-size: 14px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e3e6ea;
         vertical-align: top; }
.pass, .promoted { color: #2a9d8f; font-weight: 600; }
.fail, .refused, .rolled_back, .tainted { color: #e63946; font-weight: 600; }
.stopped, .canary, .candidate, .inconclusive { color: #b07d2a; font-weight: 600; }
section { margin-top: 28px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fact(label: str, value: str) -> str:
    return f'<div class="fact">{_e(label)}<b>{_e(value)}</b></div>'


def facts(data: ReportData) -> str:
    production = data.aliases.get("production")
    outcomes = Counter((c["end"] or {}).get("outcome", "unfinished") for c in data.cycles)
    verdicts = Counter((v["canary"] or {}).get("outcome") for v in data.versions if v["canary"])
    tainted = sum(1 for v in data.versions if v["tainted"])
    current = next((v for v in data.versions if v["version"] == production), None)
    problem = " — may not serve" if current and current.get("problems") else ""
    parts = [
        _fact("serving in production", (f"v{production}" if production else "base model")
              + problem),
        _fact("cycles", ", ".join(f"{n} {k}" for k, n in outcomes.items()) or "none yet"),
        _fact("model versions", f"{len(data.versions)} ({tainted} tainted)"),
        _fact("canaries", ", ".join(f"{n} {k}" for k, n in verdicts.items()) or "none"),
        _fact("erasures", f"{len(data.erasures)} "
              f"({sum(e['clean'] for e in data.erasures)} verified clean)"),
    ]  # fmt: skip
    return f'<div class="facts">{"".join(parts)}</div>'


def cycles_table(data: ReportData) -> str:
    rows = []
    for c in data.cycles:
        end = c["end"] or {"outcome": "unfinished", "summary": "rerun `tuneloop cycle` to resume"}
        trigger = (c.get("trigger") or {}).get("kind", "manual")
        css = end.get("canary_now") or end["outcome"]
        if end.get("canary_now"):
            end = {**end, "outcome": f"canary {end['canary_now']}"}
        seconds = sum(s.get("seconds", 0) for s in c["stages"])
        rows.append(f'<tr><td>{_e(c["cycle"])}</td><td>{_e(c["started_at"])}</td>'
                    f'<td>{_e(trigger)}</td><td class="{_e(css)}">'
                    f'{_e(end["outcome"])}</td><td>{_e(end["summary"])}</td>'
                    f"<td>{seconds:.0f}</td></tr>")  # fmt: skip
    head = ("<tr><th>cycle</th><th>started</th><th>trigger</th><th>outcome</th>"
            "<th>what happened</th><th>seconds</th></tr>")  # fmt: skip
    return f"<table>{head}{''.join(rows)}</table>" if rows else "<p>No cycle has run yet.</p>"


def models_table(data: ReportData) -> str:
    rows = []
    for v in reversed(data.versions):
        gate = v["gate"] or {"decision": "not gated", "reasons": []}
        canary = v["canary"] or {}
        reasons = "<br>".join(_e(r) for r in gate["reasons"][:4])
        reasons += "".join(f"<br><i>warning: {_e(w)}</i>" for w in gate.get("warnings", [])[:2])
        taint = "tainted: " + _e(v["tainted"]["request_id"]) if v["tainted"] else ""
        serve = "<br>".join(_e(p) for p in v.get("problems", [])) or "may serve"
        css = "refused" if v.get("problems") else "pass"
        if v.get("waiver"):
            serve += f"<br>forced by {_e(v['waiver']['by'])}: {_e(v['waiver']['reason'])}"
        rows.append(f'<tr><td>v{_e(v["version"])} {_e(", ".join(v["aliases"]))}</td>'
                    f'<td>{_e(v["dataset"])}</td><td class="{_e(gate["decision"])}">'
                    f'{_e(gate["decision"])}</td><td>{reasons}</td>'
                    f'<td class="{_e(canary.get("outcome", ""))}">'
                    f'{_e(canary.get("outcome", ""))}</td>'
                    f'<td class="tainted">{taint}</td>'
                    f'<td class="{css}">{serve}</td></tr>')  # fmt: skip
    head = ("<tr><th>version</th><th>dataset</th><th>gate</th><th>why</th><th>canary</th>"
            "<th>erasure</th><th>release check</th></tr>")  # fmt: skip
    return f"<table>{head}{''.join(rows)}</table>" if rows else "<p>No model version yet.</p>"


def _figure(fig: Any) -> str:
    if fig is None:
        return ""
    body: str = fig.to_html(full_html=False, include_plotlyjs=False,
                            config={"displaylogo": False, "responsive": True})  # fmt: skip
    return f'<div class="chart">{body}</div>'


def render(data: ReportData) -> str:
    charts = [
        ("Eval scores", figures.scores_along_lineage(data)),
        ("Safety", figures.safety_by_category(data)),
        ("Training", figures.loss_curves(data)),
        ("Lineage", figures.lineage(data)),
        ("Contamination", figures.contamination_by_cycle(data)),
        ("Time", figures.stage_times(data)),
        ("Triggers", figures.triggers(data)),
    ]
    canaries = [figures.canary(c) for c in data.canaries]
    sections = "".join(f"<section><h2>{_e(t)}</h2>{_figure(f)}</section>" for t, f in charts if f)
    if any(canaries):
        sections += "<section><h2>Canaries</h2>" + "".join(map(_figure, canaries)) + "</section>"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>tuneloop — {_e(data.name)}</title><style>{STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<h1>tuneloop — {_e(data.name)}</h1>"
        f'<p class="sub">report generated {_e(data.generated_at)}</p>{facts(data)}'
        f"<section><h2>Cycles</h2>{cycles_table(data)}</section>"
        f"<section><h2>Model versions</h2>{models_table(data)}</section>"
        f"{sections}</body></html>"
    )


def write_report(ws: Workspace, out: Path | None = None) -> Path:
    """Render the workspace's report to ``out`` (default :attr:`Workspace.report_page_path`)."""
    target = out or ws.report_page_path
    page = render(collect(ws))
    with atomic_writer(target, "w") as fh:
        fh.write(page)
    return target
