"""``POST /v1/feedback``: thumbs, ratings, corrections and comments, joined later by response id.

Feedback is accepted only from the tenant (API key) that made the request, and only for a
response this server logged; for anyone else the response does not exist (404), so ids cannot
be probed across tenants.
"""

from __future__ import annotations

import asyncio
import time

from tuneloop.serve.errors import APIError
from tuneloop.serve.protocol import FeedbackRequest, FeedbackResponse, new_id
from tuneloop.serve.services import Services
from tuneloop.state.serving_log import FeedbackRow


async def _owner(s: Services, response_id: str) -> tuple[str, str, str] | None:
    known = s.recent.get(response_id)
    if known is not None:
        return known
    row = await asyncio.to_thread(s.log.response, response_id)
    if row is None:
        return None
    version = "base" if row["model_version"] == "base" else f"v{row['model_version']}"
    return row["tenant"], row["arm"], version


async def accept(s: Services, body: FeedbackRequest, tenant: str) -> FeedbackResponse:
    low, high = s.cfg.rating_range
    if body.rating is not None and not low <= body.rating <= high:
        raise APIError(
            400,
            f"rating {body.rating:g} is outside {low:g}..{high:g}; send a rating in that range",
            "invalid_rating",
            "rating",
        )
    owner = await _owner(s, body.response_id)
    if owner is None or owner[0] != tenant:
        raise APIError(
            404,
            f"no response {body.response_id!r} for this API key; send the id "
            "of a chat completion this key created",
            "response_not_found",
            "response_id",
        )
    _, arm, version = owner
    fid = new_id("fb")
    s.writer.put(
        FeedbackRow(
            fid, body.response_id, tenant, body.thumbs, body.rating, body.correction, body.comment
        )
    )
    kinds = [
        f"thumbs_{body.thumbs}" if body.thumbs else None,
        "rating" if body.rating is not None else None,
        "correction" if body.correction else None,
        "comment" if body.comment else None,
    ]
    for kind in filter(None, kinds):
        s.metrics.feedback.labels(arm, version, kind).inc()
    return FeedbackResponse(id=fid, response_id=body.response_id, created=int(time.time()))
