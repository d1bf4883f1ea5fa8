"""curate: a content-addressed dataset version; the cycle stops when it holds no training
records, or nothing the newest model was not trained on."""

from __future__ import annotations

from pydantic import BaseModel

from tuneloop.cycle.stages import collect
from tuneloop.datasets import DatasetStore
from tuneloop.flows.curate import curate as build
from tuneloop.flows.register import registry_for
from tuneloop.registry import Registry
from tuneloop.state.cycle import Cycle, StageReport
from tuneloop.workspace import Workspace

NAME = "curate"


class SinceLastTrained(BaseModel):
    """How the new dataset differs from the one the newest model was trained on."""

    model_version: str
    dataset: str
    added: int
    removed: int
    changed: int


class Report(StageReport):
    dataset: str
    train: int
    validation: int
    records_in: int
    dropped: int
    since_last_trained: SinceLastTrained | None = None


def run(ws: Workspace, cycle: Cycle) -> Report:
    built = build(ws, allow_empty=True)
    report = Report(
        dataset=built.version,
        train=built.train,
        validation=built.validation,
        records_in=built.records_in,
        dropped=built.records_in - built.records_out,
    )
    if report.train == 0:
        return report.model_copy(
            update={
                "status": "stopped",
                "summary": f"dataset "
                f"{report.dataset} has no training records (every record "
                "was dropped or held out)",
            }
        )
    trained = last_trained_dataset(registry_for(ws))
    if trained is not None and trained[1]:
        diff = DatasetStore(ws.datasets_dir).diff(trained[1], report.dataset)
        since = SinceLastTrained(
            model_version=trained[0],
            dataset=trained[1],
            added=len(diff.added),
            removed=len(diff.removed),
            changed=len(diff.changed),
        )
        report = report.model_copy(update={"since_last_trained": since})
        retrain = cycle.report(collect.NAME, collect.Report).action == "retrain"
        if not (diff.added or diff.removed or diff.changed or retrain):
            return report.model_copy(
                update={
                    "status": "stopped",
                    "summary": "no new training "
                    f"data: dataset {report.dataset} holds the records "
                    f"v{trained[0]} was trained on",
                }
            )
    summary = (
        f"dataset {report.dataset}: {report.train} train + {report.validation} "
        f"validation ({report.dropped} dropped by curation)"
    )
    return report.model_copy(update={"summary": summary})


def last_trained_dataset(registry: Registry) -> tuple[str, str] | None:
    """(model version, dataset version) of the newest registered model."""
    versions = registry.list()
    if not versions:
        return None
    newest = versions[-1]
    return newest.version, newest.lineage.dataset_version
