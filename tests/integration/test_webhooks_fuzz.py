"""Fuzz the webhook endpoints and the runs API from the OpenAPI document (schemathesis), half
the webhook bodies signed with the right secret so the parsers behind the signature are
reached too.

Checks: no 5xx, only documented status codes, content types and response schemas; and after
it all, no run that a stored, accepted delivery does not account for, an intact audit chain.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from codefactory.config import Settings
from codefactory.factory import Factory, build_factory
from codefactory.runs.change_notices import NOTICE_SOURCE
from codefactory.store.models import RunRow
from codefactory.store.trigger_tables import DeliveryRow
from codefactory.triggers.settings import WEBHOOK_SOURCES, RepositoryBinding, TriggerSettings
from codefactory.web.app import create_app
from tests.fixtures.webhooks.signed import SECRETS, headers
from tests.oidc_helpers import OidcProvider, oidc_settings, web_headers

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Every read-only route of the app besides the webhooks (which are always fuzzed).
OWN_PATHS = {
    "/api/runs",
    "/api/runs/{run_id}",
    "/api/deliveries",
    "/api/audit/verify",
    "/api/audit/checkpoint",
    "/api/audit/proofs/inclusion",
    "/api/audit/proofs/consistency",
    "/.well-known/jwks.json",
}  # the dashboard's HTML pages are not in the OpenAPI document (tests/browser, test_dashboard)
EVENT_HEADERS = {
    "github": "X-GitHub-Event",
    "gitlab": "X-Gitlab-Event",
    "sentry": "Sentry-Hook-Resource",
}


@pytest.fixture(scope="module")
def login(oidc_provider: OidcProvider) -> dict[str, str]:
    """The bearer token every non-webhook call carries (the API needs a login)."""
    return web_headers(oidc_provider)


@pytest.fixture(scope="module")
def fuzzed_factory(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Factory:
    root = tmp_path_factory.mktemp("fuzz")
    # schemathesis calls the app as host `testserver`
    extra = oidc_settings(oidc_provider, root / "people", trusted_hosts=["testserver"])
    triggers = TriggerSettings(
        secrets=dict(SECRETS),  # type: ignore[arg-type]
        repositories={"": RepositoryBinding(path=root / "repo", sponsor="priya.shah")},
    )
    return build_factory(Settings(data_dir=root / "data", triggers=triggers, **extra))


@pytest.fixture(scope="module")
def api_schema(fuzzed_factory: Factory, login: dict[str, str]) -> Any:
    app = create_app(fuzzed_factory)
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=login)


def call(case: Any, login: dict[str, str]) -> None:
    source = case.path.removeprefix("/webhooks/") if case.path.startswith("/webhooks/") else ""
    extra: dict[str, str] = {} if source else dict(login)
    body = case.body
    if source and source != "slack" and isinstance(body, dict) and len(json.dumps(body)) % 2:
        raw = json.dumps(body).encode()
        event = str((case.headers or {}).get(EVENT_HEADERS.get(source, ""), "issues"))
        if source == NOTICE_SOURCE:  # the ServiceNow source's secret (runs/change_notices.py)
            extra = {"X-Codefactory-Token": SECRETS["servicenow"]}
        else:
            extra = headers(source, raw, event=event)
            extra.pop("Content-Type", None)
    case.call_and_validate(headers=extra or None, checks=CHECKS)


def test_the_api_survives_anything(api_schema: Any, login: dict[str, str]) -> None:
    operations = [
        operation
        for operation in (result.ok() for result in api_schema.get_all_operations())
        if operation.path.startswith("/webhooks/") or operation.path in OWN_PATHS
    ]
    assert len(operations) == len(WEBHOOK_SOURCES) + 1 + len(OWN_PATHS)  # + servicenow-change
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            call(case, login)

        fuzz()


def test_after_the_fuzz_every_run_is_accounted_for(fuzzed_factory: Factory) -> None:
    with Session(fuzzed_factory.store.engine) as session:
        runs = set(session.scalars(select(RunRow.id)))
        delivered = set(session.scalars(select(DeliveryRow.run_id)))
    assert runs <= delivered
    assert fuzzed_factory.audit.verify().ok
