"""Property-based tests of the API against its own OpenAPI document (schemathesis).

Two tests, each on SQLite and on PostgreSQL, against the app in-process (ASGI):

- every operation, fed generated requests, valid and invalid ones, half of them
  aimed at real resources seeded first (a pipeline with a file, a run with an
  artifact, a workflow with a pipeline and a run);
- stateful sequences following the links schemathesis infers between operations
  (a created pipeline's ``uuid`` becomes the next request's ``{pipeline_uuid}``...).

Each request carries the key its route's permission asks for. Every answer must
not be a 5xx, and its status code, content type and body must be documented.

Runs are taken but never executed, and callbacks never sent: fuzzed URLs must not
turn into outbound requests. The examples are bounded and derandomized, so a run
costs the same every time and a failure reproduces.

schemathesis's own pytest integration (``from_fixture``) does not work with pytest 9,
hence the loop over operations with plain Hypothesis tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.harness import MODELS, Keys
from workflow_service.app import create_app
from workflow_service.auth.dependencies import API_KEY_HEADER
from workflow_service.auth.models import Permission
from workflow_service.queue.inprocess import InProcessQueue
from workflow_service.runs.callbacks import CallbackDispatcher
from workflow_service.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_MODE = 10
"""Per operation and generation mode (valid, invalid), each on fresh and on seeded uuids."""
REQUEST_TIMEOUT_SECONDS = 10.0
STREAM_TIMEOUT_SECONDS = 0.3
"""The console stream of a run that has not ended never ends: keep what came by then."""

_COMMON: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": list(hypothesis.HealthCheck),
    "print_blob": False,
}
FUZZ_SETTINGS = hypothesis.settings(max_examples=EXAMPLES_PER_MODE, **_COMMON)
STATEFUL_SETTINGS = hypothesis.settings(max_examples=30, stateful_step_count=6, **_COMMON)


def _route_permission(route: APIRoute) -> Permission | None:
    for dependency in route.dependant.dependencies:
        name = getattr(dependency.call, "__name__", "")
        if name.startswith("require_"):
            return Permission(name.removeprefix("require_").upper())
    return None


def route_permissions(app: FastAPI) -> dict[tuple[str, str], Permission | None]:
    """(METHOD, path template) → the permission of the route's auth dependency."""
    return {
        (method, route.path): _route_permission(route)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


def _ok(response: requests.Response) -> Any:
    assert response.status_code == 200, (response.request.method, response.url, response.text)
    return response.json()


@dataclass
class Target:
    """The app under test, reached through schemathesis's ASGI transport (its event loop)."""

    app: FastAPI
    keys: Keys
    schema: Any
    permissions: dict[tuple[str, str], Permission | None]
    seeds: dict[str, str] = field(default_factory=dict)

    def operations(self) -> list[Any]:
        return [result.ok() for result in self.schema.get_all_operations()]

    def call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        """The key the operation's route asks for, and a timeout."""
        operation = case.operation
        permission = self.permissions[(operation.method.upper(), operation.path)]
        headers = {} if permission is None else {API_KEY_HEADER: self.keys.for_permission(permission)}
        stream = operation.path.endswith("/stream")
        return {
            "headers": headers,
            "timeout": STREAM_TIMEOUT_SECONDS if stream else REQUEST_TIMEOUT_SECONDS,
        }

    def client(self, permission: Permission) -> asgi.ASGIClient:
        client = asgi.get_client(self.app)
        client.headers[API_KEY_HEADER] = self.keys.for_permission(permission)
        return client

    def seed(self) -> None:
        """Real resources of every kind, for generated requests to aim at."""
        model = (MODELS / "tiny" / "tiny.glm").read_bytes()
        with (
            self.client(Permission.PIPELINES_CLIENT) as client,
            self.client(Permission.PIPELINES_WORKER) as worker,
        ):
            pipeline = _ok(client.post("/v1/pipelines", json={"kind": "gridlabd", "name": "seed"}))
            p = pipeline["uuid"]
            _ok(client.post(f"/v1/pipelines/{p}/files", files=[("files", ("tiny.glm", model))]))
            r = _ok(client.post(f"/v1/pipelines/{p}/runs", json={}))["uuid"]
            _ok(worker.put(f"/v1/pipelines/{p}/runs/{r}/state", json={"state": "RUNNING"}))
            _ok(
                worker.post(
                    f"/v1/pipelines/{p}/runs/{r}/artifacts",
                    params={"name": "out.csv"},
                    data=b"a,b\n1,2\n",
                    headers={"Content-Type": "text/csv"},
                )
            )
            artifact = _ok(client.get(f"/v1/pipelines/{p}/runs/{r}"))["artifacts"][0]
            w = _ok(client.post("/v1/workflows", json={"name": "seed"}))["uuid"]
            node = _ok(client.post(f"/v1/workflows/{w}/pipelines", json={"pipeline_uuid": p}))
            workflow_run = _ok(client.post(f"/v1/workflows/{w}/runs", json={}))
        self.seeds = {
            "pipeline_uuid": p,
            "name": "tiny.glm",
            "run_uuid": r,
            "artifact_uuid": artifact["uuid"],
            "workflow_uuid": w,
            "workflow_pipeline_uuid": node["uuid"],
            "workflow_run_uuid": workflow_run["uuid"],
        }

    def cases(self, operation: Any) -> st.SearchStrategy[schemathesis.Case]:
        """Valid and invalid requests, on generated path parameters and on the seeds."""
        seeded = {p.name: self.seeds[p.name] for p in operation.path_parameters if p.name in self.seeds}
        strategies = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(mode))
            if seeded:
                strategies.append(
                    operation.as_strategy(mode, path_parameters=seeded).map(self._seed_body)
                )
        return st.one_of(strategies)

    def _seed_body(self, case: schemathesis.Case) -> schemathesis.Case:
        if isinstance(case.body, dict) and isinstance(case.body.get("pipeline_uuid"), str):
            case.body["pipeline_uuid"] = self.seeds["pipeline_uuid"]
        return case


async def _do_nothing(*args: object, **kwargs: object) -> None:
    return None


@pytest.fixture
def target(settings: Settings, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    # No run executes (its inputs would be fetched from fuzzed URLs) and no callback is
    # sent (to fuzzed URLs either): what is tested here is the API's answers.
    monkeypatch.setattr(InProcessQueue, "enqueue", _do_nothing)
    monkeypatch.setattr(InProcessQueue, "abort", _do_nothing)
    monkeypatch.setattr(CallbackDispatcher, "notify", lambda self, key, callback: None)
    # The app opens its own database in its lifespan, on schemathesis's event loop:
    # the `database` fixture's connections belong to pytest's loop.
    app = create_app(settings)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        yield Target(app=app, keys=keys, schema=schema, permissions=route_permissions(app))
    finally:
        asgi.shutdown_lifespans()


def test_every_v1_operation_is_sent_with_its_key(target: Target) -> None:
    operations = target.operations()
    assert len(operations) >= 40
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        assert key in target.permissions, key
        public = not operation.path.startswith("/v1/")
        assert (target.permissions[key] is None) == public, key


def test_every_operation_answers_as_documented(target: Target) -> None:
    target.seed()
    failures: dict[str, str] = {}
    for operation in target.operations():

        @FUZZ_SETTINGS
        @hypothesis.given(case=target.cases(operation))
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS, **target.call_kwargs(case))

        try:
            fuzz()
        except Exception as exc:
            failures[operation.label] = str(exc)
        if operation.method.upper() == "DELETE":
            target.seed()  # the seeds may be gone
    report = "\n\n".join(f"=== {label}\n{message}" for label, message in failures.items())
    assert not failures, f"{len(failures)} operations failed:\n\n{report}"


def test_stateful_sequences_answer_as_documented(target: Target) -> None:
    class Sequences(target.schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return target.call_kwargs(case)

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))

    Sequences.run(settings=STATEFUL_SETTINGS)
