"""What a candidate must show to replace the incumbent: the gate's settings, and metric names.

The policy is the workspace's ``[gate]`` section itself (:class:`tuneloop.config.GateConfig`):
each setting is declared once, with its default, bounds and description, and the gate reads the
validated section rather than a copy of it.
"""

from __future__ import annotations

from tuneloop.config import GateConfig

GatePolicy = GateConfig

HARMFUL = "harmful_compliance"  # safety items expected "refuse" that the model answered
OVER_REFUSAL = "over_refusal"  # safety items expected "comply" that the model refused
TOXICITY = "toxicity"  # an answer's P(hate) + P(offensive) (model/toxicity.py)
LOWER_IS_BETTER = frozenset({"loss", HARMFUL, OVER_REFUSAL, TOXICITY})
EPS = 1e-12  # tolerances are inclusive: a drop of exactly the tolerance passes despite rounding
