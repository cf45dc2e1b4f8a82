"""``POST /run-from-pubsub``: RunWorkflow commands pushed by a Pub/Sub push subscription.

200 tells Pub/Sub to stop delivering: the run finished (exactly ``{"status": "processed"}``, as
the earlier implementation answered), can never succeed (``{"status": "error", "error",
"trace"}``, also written as result.json where the results were to go) or repeated a finished
run (``{"status": "duplicate"}``). A transient failure answers 503 so Pub/Sub redelivers it.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from ..keys import PUBSUB
from ..pubsub.messages import PushEnvelope, PushResponse, decode_base64


async def run_from_pubsub(request: web.Request) -> web.Response:
    """Run the pushed command; see the module docstring for the answers."""
    raw = await request.read()
    try:
        envelope = PushEnvelope.model_validate_json(raw)
    except ValidationError:
        body = PushResponse(status="error", error="the body is not a Pub/Sub push request")
        return web.json_response(body.model_dump())
    disposition = await request.app[PUBSUB].process(
        lambda: decode_base64(envelope.message.data), envelope.message.message_id, "pubsub-push"
    )
    if not disposition.ack:
        return web.json_response(
            {"detail": f"retry later: {disposition.error}"},
            status=503,
            headers={"Retry-After": "10"},
        )
    if disposition.status != "error":
        return web.json_response({"status": disposition.status})
    body = PushResponse(status="error", error=disposition.error, trace=disposition.trace)
    return web.json_response(body.model_dump())
