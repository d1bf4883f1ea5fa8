"""The sites' Flower ClientApp: each simulated node is one site, by its partition id.

The app is built from the sites' specs (where each workspace is), so that Flower's simulation
engine can run every site on one machine; across machines each SuperNode would be given its own
spec. A site's reply is built here and nowhere else: the trained tensors' change, one metric
record, one lineage report (see :mod:`tuneloop.federated.wire`).
"""

from __future__ import annotations

from collections.abc import Sequence

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from tuneloop.federated.site import SiteSpec, SiteUpdate, train_site
from tuneloop.federated.wire import (
    ARRAYS,
    METRICS,
    PLAN,
    SITE,
    WEIGHT,
    RoundPlan,
    from_record,
    to_record,
)


def reply_content(update: SiteUpdate) -> RecordDict:
    """The whole reply: nothing but these three records leaves a site."""
    metrics = MetricRecord(
        {
            WEIGHT: update.examples,
            "train_loss": update.train_loss,
            "val_loss": update.val_loss,
            "update_norm": update.norm,
        }
    )
    return RecordDict(
        {ARRAYS: to_record(update.delta), METRICS: metrics, SITE: update.report.to_record()}
    )


def client_app(sites: Sequence[SiteSpec]) -> ClientApp:
    """A ClientApp whose node ``i`` trains site ``i``."""
    specs = tuple(sites)
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        spec = specs[int(str(context.node_config["partition-id"]))]
        config = msg.content.config_records[PLAN]
        plan, round_ = RoundPlan.from_record(config), int(str(config["server-round"]))
        update = train_site(spec, from_record(msg.content.array_records[ARRAYS]), plan, round_)
        return Message(content=reply_content(update), reply_to=msg)

    return app
