"""The LiveKit webhook receiver: adoption evidence arriving from Visio's media layer, as an ASGI app.

The raw body is verified (token, issuer, the body's SHA-256) by connectors.livekit before anything reads it; an
event is stored once by its id, so a late or repeated delivery changes nothing; the sender gets the answers Meet's
own endpoint gives (200 `{"status": "success"}`; 401 without Authorization, 400 for a bad signature or body, 422
for an event name LiveKit does not send, all `{"status": "error"}`). `bascule adoption serve` runs it alone; the
web application mounts it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.livekit import WebhookVerifier, webhook_http_status
from core.adoption import AdoptionEvent, WebhookRejected
from db.adoption import AdoptionRepository
from db.engine import make_engine, make_session_factory

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/livekit/webhook"
MAX_BODY_BYTES = 1 << 20  # a WebhookEvent is a few kilobytes; anything near this is not one


def adoption_app(database_url: str, tenant_id: str, verifier: WebhookVerifier) -> Starlette:
    """The receiver for one tenant's Visio instance, storing into the state database at `database_url`."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)

    def store(event: AdoptionEvent) -> int:
        with sessions.begin() as session:
            return AdoptionRepository(session, tenant_id).record([event])

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"status": "error"}, status_code=413)
        outcome = verifier.verify(body, request.headers.get("authorization"))
        status = webhook_http_status(outcome)
        if isinstance(outcome, AdoptionEvent):
            new = await run_in_threadpool(store, outcome)
            log.info("tenant %s: LiveKit event %s (%s) %s", tenant_id, outcome.event_id, outcome.event,
                     "stored" if new else "already stored")
        elif isinstance(outcome, WebhookRejected):
            log.warning("tenant %s: LiveKit webhook refused (%s): HTTP %d", tenant_id, outcome.reason, status)
        return JSONResponse({"status": "success" if status == 200 else "error"}, status_code=status)

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        engine.dispose()

    return Starlette(routes=[Route(WEBHOOK_PATH, receive, methods=["POST"]), Route("/health", health)],
                     lifespan=lifespan)
