"""The dashboard's routes: `GET /` (the queue), `GET /runs/{id}` (the run page, with the
statement to sign when `verdict` is given), `POST /runs/{id}/verdict` (a signed verdict) and
`GET /static/dashboard.css`. Every route is behind the login (`web.auth.AuthGate`); the
reviewer is always the signed-in person (`current_person`)."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from codefactory.identity.directory import Person
from codefactory.runs.review import REFUSED_EVENT
from codefactory.runs.sign_offs import REFUSED_EVENT as SIGN_OFF_REFUSED
from codefactory.web.auth import current_person
from codefactory.web.dashboard.queue import queue_page
from codefactory.web.dashboard.run_page import refusal_for, run_page
from codefactory.web.dashboard.stages import Stage
from codefactory.web.dashboard.templates import render
from codefactory.web.dashboard.verdicts import (
    DESK_ERRORS,
    FormInvalid,
    SignedVerdict,
    StatementToSign,
    csrf_token,
    csrf_valid,
    record,
    signed_verdict,
    stage_for,
    statement_to_sign,
    status_of,
)

if TYPE_CHECKING:
    from codefactory.factory import Factory

RECENT_RUNS = 200
MAX_FORM_BYTES = 64 * 1024
RECORDED = ("approve", "reject", "accept")
Viewer = Annotated[Person, Depends(current_person)]


async def posted_form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body, one value per field; `FormInvalid` for
    another type, a body over `MAX_FORM_BYTES` or a repeated field."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormInvalid(f"expected a form (application/x-www-form-urlencoded), not {kind!r}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormInvalid(f"the form is larger than {MAX_FORM_BYTES} bytes")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if any(len(values) > 1 for values in fields.values()):
        raise FormInvalid("a field of the form is repeated")
    return {name: values[0] for name, values in fields.items()}


class DashboardPages:
    """The pages over one factory: its store, audit log and review desk."""

    def __init__(self, factory: Factory) -> None:
        self.factory = factory

    def queue(self, viewer: Person | None) -> str:
        """The queue page's HTML for `viewer` over the most recent runs."""
        store = self.factory.store
        runs = store.search_runs(limit=RECENT_RUNS)
        page = queue_page(runs, viewer=viewer, triggers=store.get_trigger)
        return render("queue.html.j2", page=page)

    def run(
        self,
        request: Request,
        run_id: str,
        viewer: Person,
        *,
        statement: StatementToSign | None = None,
        error: str = "",
        recorded: str = "",
        status: int = 200,
    ) -> HTMLResponse:
        """The run page answering `status`, or 404 naming the run id."""
        run = self.factory.store.get_run(run_id)
        if run is None:
            body = render("missing.html.j2", viewer=viewer, run_id=run_id)
            return HTMLResponse(body, status_code=404)
        body = render(
            "run.html.j2",
            page=run_page(self.factory, run, viewer),
            statement=statement,
            error=error,
            recorded=recorded,
            csrf=csrf_token(request.session),
        )
        return HTMLResponse(body, status_code=status)

    def ask(
        self, request: Request, run_id: str, viewer: Person, verdict: str, comment: str
    ) -> HTMLResponse:
        """The run page with the statement `viewer` signs for `verdict` and `comment`, or
        with why there is none (422)."""
        run = self.factory.store.get_run(run_id)
        if run is None:
            return self.run(request, run_id, viewer)
        try:
            statement = statement_to_sign(self.factory.review, run, viewer, verdict, comment)
        except (*DESK_ERRORS, FormInvalid) as err:
            return self.run(request, run_id, viewer, error=str(err), status=422)
        return self.run(request, run_id, viewer, statement=statement)

    def decide(
        self, request: Request, run_id: str, viewer: Person, form: dict[str, str]
    ) -> Response:
        """Hand a posted verdict to the review desk; back to the run page (303) when it counts,
        else the page with the desk's reason (`verdicts.status_of`). Whatever a person whom
        their role or segregation of duties keeps from signing posts goes to the desk too,
        which audits the refusal (`review-refused`, `sign-off-refused`)."""
        store = self.factory.store
        run = store.get_run(run_id)
        if run is None:
            return self.run(request, run_id, viewer)
        refused = bool(refusal_for(viewer, run, store.get_trigger(run.trigger_id)))
        stage = stage_for(run)
        try:
            verdict = self._verdict(stage, form, refused=refused)
            record(self.factory.review, run, viewer, verdict)
        except (*DESK_ERRORS, FormInvalid) as err:
            status = status_of(err, refused=refused)
            return self.run(request, run_id, viewer, error=str(err), status=status)
        done = stage.verdicts[0] if verdict.approve else stage.verdicts[1]
        return RedirectResponse(f"/runs/{quote(run_id, safe='')}?recorded={done}", 303)

    @staticmethod
    def _verdict(stage: Stage, form: dict[str, str], *, refused: bool) -> SignedVerdict:
        try:
            return signed_verdict(stage, form)
        except FormInvalid:
            if not refused:
                raise
            approve = form.get("verdict") != "reject"
            return SignedVerdict(approve=approve, statement=b"", signature="")

    def forged(self, request: Request, run_id: str, viewer: Person) -> Response:
        """A verdict form without the session's CSRF token: audited (`review-refused`, or
        `sign-off-refused` for a run in QA or UAT), refused (403)."""
        run = self.factory.store.get_run(run_id)
        if run is not None:
            self.factory.store.record(
                SIGN_OFF_REFUSED if stage_for(run).sign_off else REFUSED_EVENT,
                actor=viewer.actor,
                run_id=run_id,
                claimed_reviewer=viewer.id,
                reason="a verdict form without this session's CSRF token (a forged request)",
                statement_digest="",
                key_fingerprint="",
            )
        why = (
            "this form did not come from this session's run page (CSRF token missing or "
            "wrong): reload the page and sign again"
        )
        return self.run(request, run_id, viewer, error=why, status=403)


def stylesheet() -> Response:
    """`static/dashboard.css` from this package."""
    css = files("codefactory.web.dashboard").joinpath("static/dashboard.css").read_bytes()
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


def dashboard_router(factory: Factory) -> APIRouter:
    """The dashboard's routes over `factory` (HTML, left out of the OpenAPI document)."""
    router = APIRouter(include_in_schema=False)
    pages = DashboardPages(factory)
    router.add_api_route("/static/dashboard.css", stylesheet, methods=["GET"])

    @router.get("/", response_class=HTMLResponse)
    def queue(viewer: Viewer) -> str:
        return pages.queue(viewer)

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    def show_run(
        request: Request,
        run_id: str,
        viewer: Viewer,
        verdict: Annotated[str, Query(max_length=20)] = "",
        comment: Annotated[str, Query(max_length=4000)] = "",
        recorded: Annotated[str, Query(max_length=20)] = "",
    ) -> HTMLResponse:
        if verdict:
            return pages.ask(request, run_id, viewer, verdict, comment)
        shown = recorded if recorded in RECORDED else ""
        return pages.run(request, run_id, viewer, recorded=shown)

    @router.post("/runs/{run_id}/verdict", response_class=HTMLResponse)
    async def post_verdict(request: Request, run_id: str, viewer: Viewer) -> Response:
        try:
            form = await posted_form(request)
        except FormInvalid as err:
            return await run_in_threadpool(
                pages.run, request, run_id, viewer, error=str(err), status=400
            )
        if not csrf_valid(request.session, form.get("csrf", "")):
            return await run_in_threadpool(pages.forged, request, run_id, viewer)
        return await run_in_threadpool(pages.decide, request, run_id, viewer, form)

    return router
