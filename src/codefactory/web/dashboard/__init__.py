"""The reviewers' dashboard: a queue of the runs waiting for the signed-in person, a page per
run with everything a reviewer needs (the highlighted diff, the checks' findings in the
changed lines, risk, rollback, CAB record, provenance, model traffic, audit proofs, the
timeline) and the signed approve / reject forms. Server-rendered Jinja2, no JavaScript."""

from codefactory.web.dashboard.routes import dashboard_router

__all__ = ["dashboard_router"]
