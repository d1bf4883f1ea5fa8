"""Federated fine-tuning: sites train LoRA on their own data; only adapter tensors leave them.

Each site is an ordinary tuneloop workspace with its own dataset version. Every round the
aggregator sends the global adapter down; each site trains it a few steps with the project's own
training loop (:mod:`tuneloop.federated.site`), and sends back the *change* of the tensors it
trained, optionally clipped and noised (:mod:`tuneloop.federated.privacy`), with its example
count and its dataset version's id and counts (never a record). The aggregator averages the
changes weighted by example counts (:mod:`tuneloop.federated.strategy`), gates the round's
adapter like any candidate (:mod:`tuneloop.federated.gate`), and registers it, with per-site
lineage, only when the gate passes (:mod:`tuneloop.federated.register`).

Why not plain FedAvg of LoRA factors: the model's update is ``B·A``, and the mean of products is
not the product of means (``mean(B)·mean(A) ≠ mean(B·A)``); sites' factors also drift into
different bases, so averaging A's and B's separately adds cross terms no site trained. The
default (``ffa``, after FFA-LoRA, Sun et al. 2024) freezes A at one seed-initialised matrix that
every site shares and trains and averages only B: then ``mean(B_i)·A = mean(B_i·A)`` exactly
(:mod:`tuneloop.federated.factors`).
"""

from tuneloop.errors import needs_extra

# Flower is the ``federated`` extra, and most modules here build on it at their top (the
# strategy subclasses Flower's FedAvg): without it, importing any of them is one line naming the
# extra to install.
with needs_extra("federated", "federated fine-tuning"):
    import flwr  # noqa: F401
