"""`POST /webhooks/<source>`: one endpoint per sender, each described in the OpenAPI document.

The body is read up to the size limit and no further; everything else (signature, parsing,
storage, the policy decision) is intake's, run in a worker thread (deliveries only to be
stored are answered before the route: `intake_fast_path.py`). Answers: 202 (200 for Slack,
which shows the text) with the receipt, 400 malformed (JSON nested too deep, control
characters in an id, a title or a name, a header the source reads sent twice), 401
unauthenticated or replayed, 413 too large, 429 an unauthenticated delivery from a client
past its budget of rejected deliveries this minute (a delivery whose signature verifies is
never answered 429). The client is the connection's peer address as the server gives it
(`request.client`); no header is read here.

Review and merge deliveries (GitHub `pull_request_review` / `pull_request`, GitLab
`Merge Request Hook`, Azure DevOps `git.pullrequest.*`, Bitbucket `pullrequest:*` / `pr:*`)
about the factory's `factory/<run-id>` branches, and merges of any branch whose head is a
packaged commit, are reconciled with their run, never a trigger (`review/reconcile.py`): the
receipt's `status` is `done` (recorded: an approval, a merge, changes asked), `refused` (the
approval does not count: the forge does not confirm it, the sponsor, a party to the change,
another commit) or `ignored` (an unknown run, repository, forge or login), `reason` says
which.

`POST /webhooks/servicenow-change` (wired when intake has the review desk) takes a ServiceNow
business rule's notice that a change request's `approval` changed (`runs/change_notices.py`),
with the ServiceNow source's secret in `X-Codefactory-Token`: 202 with the run and its state
(still `approved`, with the reason, while ServiceNow's Table API does not say `approved`),
401/413 as above, 429 past the budget of unauthenticated rejections or, for authenticated
notices, of refused ones (naming no waiting change) this minute, 404 when no approved run
waits on the change, 422 for a body that is not a notice; a repeat is answered as the first
unless its run still waits, when ServiceNow is read again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from codefactory.runs import change_notices as notices
from codefactory.runs.intake import Receipt, WebhookIntake
from codefactory.triggers.errors import DeliveryInvalid, DeliveryRejected
from codefactory.triggers.port import WebhookSource

SLACK_FIELDS = ("command", "text", "user_id", "user_name", "team_domain", "trigger_id")


class DeliveryReceipt(BaseModel):
    """The answer to an accepted delivery: stored, and what became of it."""

    source: str
    delivery_id: str
    status: Literal["queued", "running", "done", "refused", "ignored", "received"]
    run_id: str | None = None
    state: str | None = None
    reason: str = ""
    duplicate: bool = False
    text: str = ""

    @classmethod
    def of(cls, receipt: Receipt) -> DeliveryReceipt:
        run = f"run {receipt.run_id} {receipt.state}" if receipt.run_id else "no run"
        status: Any = receipt.status
        return cls(
            source=receipt.source,
            delivery_id=receipt.delivery_id,
            status=status,
            run_id=receipt.run_id,
            state=receipt.state,
            reason=receipt.reason,
            duplicate=receipt.duplicate,
            text=f"{receipt.status}: {run}" + (f" ({receipt.reason})" if receipt.reason else ""),
        )


class Problem(BaseModel):
    """Why a delivery was not accepted."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Problem,
        "description": "Malformed body, JSON nested too deep, control characters in an id, "
        "title or name, or a missing delivery id",
    },
    401: {"model": Problem, "description": "No secret, bad signature or token, or a replay"},
    413: {"model": Problem, "description": "Body over the size limit"},
    429: {
        "model": Problem,
        "description": "Not authenticated, and too many rejected deliveries from this "
        "client this minute",
    },
}


def webhook_router(intake: WebhookIntake) -> APIRouter:
    """One route per webhook source of `intake`."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])
    for name, source in intake.sources.items():
        router.add_api_route(
            f"/{name}",
            _endpoint(intake, name),
            methods=["POST"],
            status_code=200 if name == "slack" else 202,
            response_model=DeliveryReceipt,
            responses=ERRORS,
            summary=f"Receive a {name} delivery",
            description=(type(source).__doc__ or "").strip(),
            operation_id=f"receive_{name}",
            openapi_extra=_openapi(source),
        )
    if intake.cab_approvals is not None:
        _add_change_notice_route(router, intake)
    return router


NOTICE_ERRORS: dict[int | str, dict[str, Any]] = {
    **{status: answer for status, answer in ERRORS.items() if status != 400},
    404: {"model": Problem, "description": "No approved run waits on the change"},
    422: {"model": Problem, "description": "Not a change approval notice"},
}


def _add_change_notice_route(router: APIRouter, intake: WebhookIntake) -> None:
    source = notices.NOTICE_SOURCE
    router.add_api_route(
        f"/{source}",
        _notice_endpoint(intake),
        methods=["POST"],
        status_code=202,
        response_model=DeliveryReceipt,
        responses=NOTICE_ERRORS,
        summary="Receive a ServiceNow change approval notice",
        description=(notices.__doc__ or "").strip(),
        operation_id="receive_servicenow_change",
        openapi_extra=_notice_openapi(),
    )


def _notice_endpoint(intake: WebhookIntake) -> Callable[[Request], Awaitable[Any]]:
    async def receive(request: Request) -> DeliveryReceipt:
        headers = dict(request.headers)
        client = request.client.host if request.client else ""
        body = await _read_limited(request, intake.settings.max_body_bytes)
        try:
            if body is None:
                receipt = await run_in_threadpool(
                    intake.refuse_oversized, notices.NOTICE_SOURCE, headers, client=client
                )
            else:
                receipt = await run_in_threadpool(
                    intake.receive_change_notice, headers, body, client=client
                )
        except DeliveryRejected as err:
            raise HTTPException(status_code=err.status, detail=str(err)) from None
        except notices.NoticeRefused as err:
            raise HTTPException(status_code=err.status, detail=str(err)) from None
        return DeliveryReceipt.of(receipt)

    return receive


def _notice_openapi() -> dict[str, Any]:
    text = {"type": "string", "maxLength": 64}
    schema = {
        "type": "object",
        "required": ["number", "sys_id", "approval"],
        "properties": {
            "number": text,
            "sys_id": text,
            "approval": text,
            "sys_mod_count": {"type": "string"},
            "sent_at": {"type": "string", "description": "GlideDateTime numeric value (ms)"},
        },
    }
    header = {
        "name": "X-Codefactory-Token",
        "in": "header",
        "required": True,
        "description": "The ServiceNow source's shared secret (triggers.secrets.servicenow)",
        "schema": {"type": "string"},
    }
    return {
        "parameters": [header],
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
    }


def repeated_header(raw: Iterable[tuple[bytes, bytes]], source: WebhookSource) -> str | None:
    """The first header `source` reads (or `Content-Type`) that the request repeats: an
    intermediary may have read another copy than intake would, so the delivery is refused."""
    read = {b"content-type", *(header.name.lower().encode() for header in source.headers)}
    seen: set[bytes] = set()
    for name, _ in raw:
        if name in read:
            if name in seen:
                return name.decode()
            seen.add(name)
    return None


def _endpoint(intake: WebhookIntake, name: str) -> Callable[[Request], Awaitable[Any]]:
    status = 200 if name == "slack" else 202
    source = intake.sources[name]

    async def receive(request: Request) -> JSONResponse:
        headers = dict(request.headers)
        client = request.client.host if request.client else ""
        repeated = repeated_header(request.headers.raw, source)
        body = await _read_limited(request, intake.settings.max_body_bytes)
        try:
            if repeated is not None:
                await run_in_threadpool(intake.refuse_repeated, name, headers, repeated,
                                        client=client)  # fmt: skip
            if body is None:
                receipt = await run_in_threadpool(
                    intake.refuse_oversized, name, headers, client=client
                )
            else:
                receipt = await run_in_threadpool(
                    intake.receive, name, headers, body, client=client
                )
        except DeliveryRejected as err:
            raise HTTPException(status_code=err.status, detail=str(err)) from None
        except DeliveryInvalid as err:
            raise HTTPException(status_code=400, detail=str(err)) from None
        # The receipt is built from typed fields: answered as it is, not validated again.
        return JSONResponse(DeliveryReceipt.of(receipt).model_dump(), status_code=status)

    return receive


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _openapi(source: WebhookSource) -> dict[str, Any]:
    if source.media_type == "application/x-www-form-urlencoded":
        properties = {field: {"type": "string"} for field in SLACK_FIELDS}
        schema: dict[str, Any] = {"type": "object", "properties": properties}
    else:
        schema = {"type": "object", "additionalProperties": True}
    return {
        "parameters": [
            {
                "name": header.name,
                "in": "header",
                "required": header.required,
                "description": header.description,
                "schema": {"type": "string"},
            }
            for header in source.headers
        ],
        "requestBody": {"required": True, "content": {source.media_type: {"schema": schema}}},
    }
