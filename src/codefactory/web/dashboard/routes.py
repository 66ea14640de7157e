"""The dashboard's routes: `GET /` (the queue), `GET /runs/{id}` (the run page, with the
statement to sign when `verdict` is given), `POST /runs/{id}/verdict` (a signed verdict) and
`GET /static/dashboard.css`. Every route is behind the login (`web.auth.AuthGate`); the
reviewer is always the signed-in person (`current_person`).

The page shows the package only as verified (`package_check`), and its forms carry the
package digest it showed: a statement or a verdict over another package is refused (409). A
person's refused verdict posts are audited in full up to a budget per minute, then answered
429 and counted (`refusals.VerdictRefusals`)."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from codefactory.audit.events import ReviewRefused, SignOffRefused
from codefactory.domain import Run
from codefactory.identity.directory import Person
from codefactory.web.auth import current_person
from codefactory.web.dashboard.queue import queue_page
from codefactory.web.dashboard.refusals import VerdictRefusals
from codefactory.web.dashboard.run_page import RunPage, refusal_for, run_page
from codefactory.web.dashboard.stages import Stage
from codefactory.web.dashboard.templates import render
from codefactory.web.dashboard.verdicts import (
    DESK_ERRORS,
    FormInvalid,
    PackageChanged,
    SignedVerdict,
    StatementToSign,
    check_digest,
    csrf_token,
    csrf_valid,
    record,
    shown_digest,
    signed_verdict,
    stage_for,
    statement_digest,
    statement_to_sign,
    status_of,
)

if TYPE_CHECKING:
    from codefactory.factory import Factory

RECENT_RUNS = 200
MAX_FORM_BYTES = 64 * 1024
RECORDED = ("approve", "reject", "accept")
REFUSED = (*DESK_ERRORS, FormInvalid, PackageChanged)
"""What refuses a statement or a verdict, shown on the page with its status (`status_of`)."""
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

    def __init__(self, factory: Factory, refusals: VerdictRefusals) -> None:
        self.factory = factory
        self.refusals = refusals

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
        page: RunPage | None = None,
        statement: StatementToSign | None = None,
        error: str = "",
        recorded: str = "",
        status: int = 200,
    ) -> HTMLResponse:
        """The run page (`page`, or made now) answering `status`, or 404 naming the run id."""
        if page is None:
            run = self.factory.store.get_run(run_id)
            if run is None:
                body = render("missing.html.j2", viewer=viewer, run_id=run_id)
                return HTMLResponse(body, status_code=404)
            page = run_page(self.factory, run, viewer)
        body = render(
            "run.html.j2",
            page=page,
            statement=statement,
            error=error,
            recorded=recorded,
            csrf=csrf_token(request.session),
        )
        return HTMLResponse(body, status_code=status)

    def ask(
        self, request: Request, run_id: str, viewer: Person, verdict: str, comment: str, digest: str
    ) -> HTMLResponse:
        """The run page with the statement `viewer` signs for `verdict` and `comment` over
        the package the page showed (`digest`), or with why there is none: 403 for a person
        the page refuses (role, segregation of duties; the desk is not asked), 409 when the
        package does not hold or is not the one shown, else the desk's reason."""
        run = self.factory.store.get_run(run_id)
        if run is None:
            return self.run(request, run_id, viewer)
        page = run_page(self.factory, run, viewer)
        try:
            if page.refusal:  # no statement for whom the desk would refuse (403)
                raise FormInvalid(page.refusal)
            if page.package.problems:
                raise PackageChanged(
                    "no statement to sign: this package does not match what the agent signed"
                )
            check_digest(shown_digest(digest), page.package.digest, "the run's package is now")
            statement = statement_to_sign(self.factory.review, run, viewer, verdict, comment)
            bound = statement_digest(statement.text.encode("utf-8"))
            check_digest(digest, bound, "the statement would bind to")
        except REFUSED as err:
            status = status_of(err, refused=bool(page.refusal))
            return self.run(request, run_id, viewer, page=page, error=str(err), status=status)
        return self.run(request, run_id, viewer, page=page, statement=statement)

    def decide(
        self, request: Request, run_id: str, viewer: Person, form: dict[str, str]
    ) -> Response:
        """Hand a posted verdict to the review desk; back to the run page (303) when it counts,
        else the page with the desk's reason (`verdicts.status_of`). A verdict over another
        package than the one the page showed (`package_digest`) is refused (409) before the
        desk. Whatever a person whom their role or segregation of duties keeps from signing
        posts goes to the desk, which audits the refusal (`review-refused`,
        `sign-off-refused`). Each refusal is spent from the person's budget."""
        store = self.factory.store
        run = store.get_run(run_id)
        if run is None:
            return self.run(request, run_id, viewer)
        refused = bool(refusal_for(viewer, run, store.get_trigger(run.trigger_id)))
        stage = stage_for(run)
        try:
            verdict = self._verdict(stage, form, refused=refused)
            if not refused:
                self._same_package(run, form, verdict)
            record(self.factory.review, run, viewer, verdict)
        except REFUSED as err:
            self.refusals.refused(viewer)
            status = status_of(err, refused=refused)
            return self.run(request, run_id, viewer, error=str(err), status=status)
        done = stage.verdicts[0] if verdict.approve else stage.verdicts[1]
        return RedirectResponse(f"/runs/{quote(run_id, safe='')}?recorded={done}", 303)

    def _same_package(self, run: Run, form: dict[str, str], verdict: SignedVerdict) -> None:
        """`PackageChanged` unless the page's digest is the statement's and the run's
        attested package digest now (`SignedFacts.attested`)."""
        shown = shown_digest(form.get("package_digest", ""))
        check_digest(shown, statement_digest(verdict.statement), "the signed statement binds to")
        now = self.factory.review.facts.attested(run).package_digest
        check_digest(shown, now, "the issuer attested")

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
            refused = SignOffRefused if stage_for(run).sign_off else ReviewRefused
            self.factory.store.append(
                refused(
                    actor=viewer.actor,
                    run_id=run_id,
                    claimed_reviewer=viewer.id,
                    reason="a verdict form without this session's CSRF token (a forged request)",
                    statement_digest="",
                    key_fingerprint="",
                )
            )
        self.refusals.refused(viewer)
        why = (
            "this form did not come from this session's run page (CSRF token missing or "
            "wrong): reload the page and sign again"
        )
        return self.run(request, run_id, viewer, error=why, status=403)

    def throttled(self, run_id: str, viewer: Person) -> HTMLResponse:
        """429: `viewer` had their budget of refused verdicts this minute; counted, not
        audited on its own, the desk not asked."""
        self.refusals.throttled(viewer, run_id)
        wait = self.refusals.retry_after()
        body = render(
            "throttled.html.j2",
            viewer=viewer,
            run_id=run_id,
            per_minute=self.refusals.per_minute,
            retry_after=wait,
        )
        return HTMLResponse(body, status_code=429, headers={"Retry-After": str(wait)})


def stylesheet() -> Response:
    """`static/dashboard.css` from this package."""
    css = files("codefactory.web.dashboard").joinpath("static/dashboard.css").read_bytes()
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


def dashboard_router(factory: Factory, refusals: VerdictRefusals | None = None) -> APIRouter:
    """The dashboard's routes over `factory` (HTML, left out of the OpenAPI document);
    `refusals` counts refused verdict posts (its owner calls `flush` at shutdown; by default
    one of its own, published when a minute is over)."""
    router = APIRouter(include_in_schema=False)
    pages = DashboardPages(factory, refusals or VerdictRefusals(factory.store.append))
    router.add_api_route("/static/dashboard.css", stylesheet, methods=["GET"])

    @router.get("/", response_class=HTMLResponse)
    def queue(viewer: Viewer) -> str:
        pages.refusals.publish_ended()
        return pages.queue(viewer)

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    def show_run(
        request: Request,
        run_id: str,
        viewer: Viewer,
        verdict: Annotated[str, Query(max_length=20)] = "",
        comment: Annotated[str, Query(max_length=4000)] = "",
        recorded: Annotated[str, Query(max_length=20)] = "",
        package_digest: Annotated[str, Query(max_length=80)] = "",
    ) -> HTMLResponse:
        pages.refusals.publish_ended()
        if verdict:
            return pages.ask(request, run_id, viewer, verdict, comment, package_digest)
        shown = recorded if recorded in RECORDED else ""
        return pages.run(request, run_id, viewer, recorded=shown)

    @router.post("/runs/{run_id}/verdict", response_class=HTMLResponse)
    async def post_verdict(request: Request, run_id: str, viewer: Viewer) -> Response:
        if pages.refusals.exhausted(viewer):
            return await run_in_threadpool(pages.throttled, run_id, viewer)
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
