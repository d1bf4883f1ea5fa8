"""The report's charts (plotly): one function per chart, each returning a figure or None."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tuneloop.report.collect import ReportData

GOOD, BAD, NEUTRAL, CANARY = "#2a9d8f", "#e63946", "#8d99ae", "#f4a261"
LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
          "height": 360, "font": {"size": 12}}  # fmt: skip


def _when(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def _label(version: str) -> str:
    return "base" if version == "base" else f"v{version}"


def loss_curves(data: ReportData) -> go.Figure | None:
    """Training loss (thin) and validation loss (markers) of every run, named by version."""
    if not data.runs:
        return None
    names = {v["run_id"]: _label(v["version"]) for v in data.versions if v["run_id"]}
    fig = go.Figure()
    for run_id, run in data.runs.items():
        name = names.get(run_id, run_id)
        fig.add_scatter(x=run["steps"], y=run["loss"], mode="lines", name=f"{name} train",
                        line={"width": 1}, opacity=0.6, legendgroup=name)  # fmt: skip
        fig.add_scatter(x=run["eval_steps"], y=run["eval_loss"], mode="lines+markers",
                        name=f"{name} validation", legendgroup=name)  # fmt: skip
    fig.update_layout(title="Loss per training run", xaxis_title="step",
                      yaxis_title="loss (nats per token)", **LAYOUT)  # fmt: skip
    return fig


def _score_rows(data: ReportData) -> list[tuple[str, dict[str, dict[str, float | None]], str]]:
    rows = [("base", data.base_scores, "base")] if data.base_scores else []
    for v in data.versions:
        gate = (v["gate"] or {}).get("decision") or "not gated"
        rows.append((_label(v["version"]), v["scores"], gate))
    return [r for r in rows if r[1]]


def scores_along_lineage(data: ReportData) -> go.Figure | None:
    """Token F1, answer loss and (where scored) field accuracy per suite for base → v1 → v2 …,
    gate decisions as markers."""
    rows = _score_rows(data)
    if not rows:
        return None
    suites = sorted({s for _, scores, _ in rows for s in scores})
    panels = [("token_f1", "token F1 (higher is better)"),
              ("loss", "answer loss (lower is better)")]  # fmt: skip
    if any(m.get("field_acc") is not None for _, scores, _ in rows for m in scores.values()):
        panels.append(("field_acc", "field accuracy (higher is better)"))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels])
    for suite in suites:
        for col, metric in enumerate((m for m, _ in panels), start=1):
            xs = [name for name, scores, _ in rows if suite in scores]
            ys = [scores[suite].get(metric) for _, scores, _ in rows if suite in scores]
            colors = [GOOD if g == "pass" else BAD if g == "fail" else NEUTRAL
                      for _, scores, g in rows if suite in scores]  # fmt: skip
            fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=suite, legendgroup=suite,
                            showlegend=col == 1, marker={"size": 11, "color": colors,
                                                         "line": {"width": 1, "color": "#333"}},
                            row=1, col=col)  # fmt: skip
    fig.update_layout(title="Eval scores along the lineage (marker: green passed the gate, red "
                      "refused, grey inconclusive / base / not gated)", **LAYOUT)  # fmt: skip
    return fig


SAFETY_PANELS = (
    ("harmful_compliance", "harmful requests answered"),
    ("over_refusal", "safe requests refused"),
    ("toxicity", "answers' mean toxicity"),
)


def safety_by_category(data: ReportData) -> go.Figure | None:
    """Per category, the base model and the two newest versions side by side: harmful
    compliance, over-refusal and toxicity (lower is better in every panel)."""
    versions = [(_label(v["version"]), v["safety"]) for v in data.versions if v.get("safety")]
    models = ([("base", data.base_safety)] if data.base_safety else []) + versions[-2:]
    panels = [(rate, title) for rate, title in SAFETY_PANELS if any(m.get(rate) for _, m in models)]
    if not panels:
        return None
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels])
    colors = (NEUTRAL, CANARY, GOOD)
    for k, (name, rates) in enumerate(models):
        for col, (rate, _) in enumerate(panels, start=1):
            found = rates.get(rate, {})
            fig.add_bar(x=list(found.values()), y=list(found), orientation="h", name=name,
                        legendgroup=name, showlegend=col == 1,
                        marker_color=colors[k % len(colors)], row=1, col=col)  # fmt: skip
    height = max(360, 24 * _categories(models, panels))
    fig.update_layout(title="Safety by category (lower is better)", barmode="group",
                      **{**LAYOUT, "height": height})  # fmt: skip
    fig.update_xaxes(range=[0, 1])
    return fig


def _categories(models: list[tuple[str, dict[str, dict[str, float]]]],
                panels: list[tuple[str, str]]) -> int:  # fmt: skip
    return max(len(m.get(rate, {})) for _, m in models for rate, _ in panels)


def contamination_by_cycle(data: ReportData) -> go.Figure | None:
    cycles = [c for c in data.cycles if c["totals"]]
    if not cycles:
        return None
    methods = sorted({m for c in cycles for m in c["contamination"]})
    fig = go.Figure()
    x = [c["cycle"] for c in cycles]
    fig.add_bar(x=x, y=[c["totals"].get("train", 0) for c in cycles], name="to training",
                marker_color=GOOD)  # fmt: skip
    for method in methods:
        fig.add_bar(x=x, y=[c["contamination"].get(method, 0) for c in cycles],
                    name=f"dropped: {method} match")  # fmt: skip
    fig.update_layout(barmode="group", title="Ingest per cycle: clean records and "
                      "contamination drops by method", yaxis_title="records", **LAYOUT)  # fmt: skip
    return fig


def stage_times(data: ReportData) -> go.Figure | None:
    cycles = [c for c in data.cycles if any("seconds" in s for s in c["stages"])]
    if not cycles:
        return None
    fig = go.Figure()
    for stage in cycles[0]["stage_order"]:
        fig.add_bar(y=[c["cycle"] for c in cycles], orientation="h", name=stage,
                    x=[next((s.get("seconds", 0) for s in c["stages"] if s["stage"] == stage), 0)
                       for c in cycles])  # fmt: skip
    fig.update_layout(barmode="stack", title="Seconds per stage of each cycle",
                      xaxis_title="seconds", **LAYOUT)  # fmt: skip
    return fig


def canary(analysis: dict[str, Any]) -> go.Figure | None:
    """Per arm over time: median latency, error rate, thumbs-down rate; weight steps and the
    promotion or rollback as vertical lines."""
    series = analysis["series"]
    if not series:
        return None
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("median latency (s)", "error rate",
                                        "thumbs-down rate"))  # fmt: skip
    for arm, color in (("production", NEUTRAL), ("canary", CANARY)):
        s = series.get(arm)
        if not s:
            continue
        times = [_when(t) for t in s["time"]]
        for row, key in ((1, "latency_p50"), (2, "error_rate"), (3, "thumbs_down")):
            fig.add_scatter(x=times, y=s[key], mode="lines+markers", name=arm, legendgroup=arm,
                            showlegend=row == 1, line={"color": color}, row=row, col=1)  # fmt: skip
    for event in analysis["events"]:
        color = {"promote": GOOD, "rollback": BAD}.get(event["action"], "#999")
        text = event["action"] + (f" {event['weight']:g}%" if event.get("weight") else "")
        fig.add_vline(x=_when(event["time"]).timestamp() * 1000, line_dash="dot",
                      line_color=color, annotation_text=text,
                      annotation_position="top left")  # fmt: skip
    title = (f"Canary v{analysis['version']} vs {_label(str(analysis['baseline']))} "
             f"({analysis['canary_id']})")  # fmt: skip
    fig.update_layout(title=title, **{**LAYOUT, "height": 560})
    return fig


def triggers(data: ReportData) -> go.Figure | None:
    if not data.triggers:
        return None
    fig = go.Figure()
    for fired, color, name in ((True, BAD, "fired"), (False, NEUTRAL, "quiet")):
        xs, ys, texts = [], [], []
        for evaluation in data.triggers:
            for check in evaluation["checks"]:
                if check["fired"] is fired:
                    xs.append(evaluation["time"])
                    ys.append(check["name"])
                    texts.append(check["detail"])
        fig.add_scatter(x=xs, y=ys, mode="markers", name=name, text=texts, hoverinfo="text+x",
                        marker={"color": color, "size": 12, "symbol": "square"})  # fmt: skip
    fig.update_layout(title="Trigger checks (hover for the numbers)", **LAYOUT)
    return fig


def lineage(data: ReportData) -> go.Figure | None:
    """Dataset versions (left) → model versions (right); dashed: the production a version
    was trained to replace. Outline red: tainted by an erasure."""
    if not data.versions:
        return None
    datasets = list(dict.fromkeys(v["dataset"] for v in data.versions))
    ds_y = {d: i for i, d in enumerate(datasets)}
    mv_y = {v["version"]: i for i, v in enumerate(data.versions)}
    fig = go.Figure()
    for v in data.versions:
        fig.add_scatter(x=[0, 1], y=[ds_y[v["dataset"]], mv_y[v["version"]]], mode="lines",
                        line={"color": "#bbb"}, showlegend=False, hoverinfo="skip")  # fmt: skip
        if v["parent"] in mv_y:
            fig.add_scatter(x=[1.25, 1.25], y=[mv_y[v["parent"]], mv_y[v["version"]]],
                            mode="lines", line={"dash": "dot", "color": "#888"},
                            showlegend=False, hoverinfo="skip")  # fmt: skip
    fig.add_scatter(x=[0] * len(datasets), y=list(range(len(datasets))), mode="markers+text",
                    text=datasets, textposition="middle left", name="dataset version",
                    marker={"size": 14, "color": "#457b9d", "symbol": "square"})  # fmt: skip
    labels, colors, outlines = [], [], []
    for v in data.versions:
        gate = (v["gate"] or {}).get("decision")
        aliases = f" [{', '.join(v['aliases'])}]" if v["aliases"] else ""
        taint = " TAINTED" if v["tainted"] else ""
        labels.append(f"v{v['version']}{aliases}{taint}")
        colors.append(GOOD if gate == "pass" else BAD if gate == "fail" else NEUTRAL)
        outlines.append(BAD if v["tainted"] else "#333")
    fig.add_scatter(x=[1] * len(labels), y=list(range(len(labels))), mode="markers+text",
                    text=labels, textposition="middle right", name="model version",
                    marker={"size": 16, "color": colors,
                            "line": {"width": 3, "color": outlines}})  # fmt: skip
    fig.update_layout(title=f"Lineage: dataset → model (base {data.versions[0]['base']})",
                      xaxis={"visible": False, "range": [-0.9, 2.0]},
                      yaxis={"visible": False}, **LAYOUT)  # fmt: skip
    return fig
