"""Property-based tests of the API against its own OpenAPI document (schemathesis).

Two tests, each on SQLite and on PostgreSQL, against the app in-process (ASGI):

- every operation, fed generated requests, valid and invalid ones, half of them
  aimed at real resources seeded first (a pipeline with a file, a run with an
  artifact, a workflow with a pipeline and a run);
- stateful sequences following links added to the document here (a created
  pipeline's ``uuid`` becomes the next request's ``{pipeline_uuid}``, a run's
  first artifact's ``uuid`` the download's ``{artifact_uuid}``...).

and, kept as plain tests, the requests fuzzing found answering 500.

Each request carries the key its route's permission asks for. Every answer must
not be a 5xx, and its status code, content type and body must be documented.

Runs are taken but never executed, and callbacks never sent: fuzzed URLs must not
turn into outbound requests. The examples are bounded and derandomized, so a run
costs the same every time and a failure reproduces; FUZZ_EXAMPLES=N explores more
(N random examples per operation, N sequences).

schemathesis's own pytest integration (``from_fixture``) does not work with pytest 9,
hence the loop over operations with plain Hypothesis tests.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.stateful.state_machine import normalize_name
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.harness import MODELS, Keys
from workflow_service.app import create_app
from workflow_service.auth.dependencies import API_KEY_HEADER
from workflow_service.auth.scheme import Permission
from workflow_service.pagination import encode_cursor
from workflow_service.queue.inprocess import InProcessQueue
from workflow_service.runs.callbacks import CallbackDispatcher
from workflow_service.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 25
SEQUENCES = 80
STEPS_PER_SEQUENCE = 10
EXPLORE = int(os.environ.get("FUZZ_EXAMPLES", "0"))
"""FUZZ_EXAMPLES=N: N random (not derandomized) examples per operation and N sequences."""
REQUEST_TIMEOUT_SECONDS = 10.0
STREAM_TIMEOUT_SECONDS = 0.5
"""The console stream of a run that has not ended never ends: keep what came by then."""


def _settings(examples: int, **extra: Any) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=EXPLORE or examples,
        derandomize=not EXPLORE,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        print_blob=False,
        **extra,
    )


FUZZ_SETTINGS = _settings(EXAMPLES_PER_OPERATION)
STATEFUL_SETTINGS = _settings(SEQUENCES, stateful_step_count=STEPS_PER_SEQUENCE)


def _route_permission(route: APIRoute) -> Permission | None:
    for dependency in route.dependant.dependencies:
        name = getattr(dependency.call, "__name__", "")
        if name.startswith("require_"):
            return Permission(name.removeprefix("require_").upper())
    return None


def route_permissions(app: FastAPI) -> dict[tuple[str, str], Permission | None]:
    """(METHOD, path template) → the permission of the route's auth dependency."""
    return {
        (method, context.path): _route_permission(context.original_route)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and context.path and context.methods
        for method in context.methods
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
        headers = (
            {} if permission is None else {API_KEY_HEADER: self.keys.for_permission(permission)}
        )
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
        seeded = {
            p.name: self.seeds[p.name] for p in operation.path_parameters if p.name in self.seeds
        }
        strategies = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(mode))
            if seeded:
                strategies.append(
                    operation.as_strategy(mode, path_parameters=seeded).map(self._seed_body)
                )
        return st.one_of(strategies)

    def stateful_schema(self) -> Any:
        """The document with links between operations, and nothing inferred."""
        config = schemathesis.Config.from_dict(
            {"phases": {"stateful": {"inference": {"algorithms": []}}}}
        )
        document = with_links(self.schema.raw_schema, self.seeds)
        schema = schemathesis.openapi.from_dict(document, config=config)
        schema.app = self.app  # reached in-process, as `from_asgi` does
        return schema

    def _seed_body(self, case: schemathesis.Case) -> schemathesis.Case:
        if isinstance(case.body, dict) and isinstance(case.body.get("pipeline_uuid"), str):
            case.body["pipeline_uuid"] = self.seeds["pipeline_uuid"]
        return case


PIPELINE = "/v1/pipelines/{pipeline_uuid}"
RUN = f"{PIPELINE}/runs/{{run_uuid}}"
WORKFLOW = "/v1/workflows/{workflow_uuid}"
RUN_OPERATIONS = [
    f"GET {RUN}",
    f"DELETE {RUN}",
    f"POST {RUN}/cancel",
    f"GET {RUN}/console",
    f"PUT {RUN}/console",
    f"POST {RUN}/console",
    f"GET {RUN}/console/stream",
    f"PUT {RUN}/state",
    f"POST {RUN}/claim",
    f"POST {RUN}/artifacts",
    f"POST {RUN}/artifacts/register",
]
SAME_RUN = {"pipeline_uuid": "$request.path.pipeline_uuid", "run_uuid": "$request.path.run_uuid"}


def stateful_links(seeds: dict[str, str]) -> list[tuple[str, list[str], dict[str, Any], Any]]:
    """(source operation, its targets, the targets' parameters, request body) of each link:
    what a response (or its request) gives the next request."""
    body_uuid = "$response.body#/uuid"
    first_member = "$response.body#/workflow_pipeline_runs/0"
    return [
        (
            "POST /v1/pipelines",
            [
                f"GET {PIPELINE}",
                f"PUT {PIPELINE}",
                f"DELETE {PIPELINE}",
                f"POST {PIPELINE}/files",
                f"GET {PIPELINE}/files",
                f"POST {PIPELINE}/runs",
                f"GET {PIPELINE}/runs",
            ],
            {"pipeline_uuid": body_uuid},
            None,
        ),
        # A new pipeline joins the seeded workflow.
        (
            "POST /v1/pipelines",
            [f"POST {WORKFLOW}/pipelines"],
            {"workflow_uuid": seeds["workflow_uuid"]},
            {"pipeline_uuid": body_uuid},
        ),
        (
            f"POST {PIPELINE}/files",
            [f"DELETE {PIPELINE}/files/{{name}}"],
            {"pipeline_uuid": "$request.path.pipeline_uuid", "name": "$response.body#/0/name"},
            None,
        ),
        (
            f"POST {PIPELINE}/files",
            [f"GET {PIPELINE}/files", f"POST {PIPELINE}/runs"],
            {"pipeline_uuid": "$request.path.pipeline_uuid"},
            None,
        ),
        (
            f"POST {PIPELINE}/runs",
            RUN_OPERATIONS,
            {"pipeline_uuid": "$request.path.pipeline_uuid", "run_uuid": body_uuid},
            None,
        ),
        *[
            (source, RUN_OPERATIONS, SAME_RUN, None)
            for source in (
                f"PUT {RUN}/state",
                f"POST {RUN}/console",
                f"POST {RUN}/artifacts",
                f"POST {RUN}/cancel",
            )
        ],
        (
            f"GET {RUN}",
            ["GET /v1/artifacts/{artifact_uuid}"],
            {"artifact_uuid": "$response.body#/artifacts/0/uuid"},
            None,
        ),
        (
            "POST /v1/workflows",
            [
                f"GET {WORKFLOW}",
                f"PUT {WORKFLOW}",
                f"DELETE {WORKFLOW}",
                f"POST {WORKFLOW}/pipelines",
                f"GET {WORKFLOW}/pipelines",
                f"POST {WORKFLOW}/runs",
                f"GET {WORKFLOW}/runs",
            ],
            {"workflow_uuid": body_uuid},
            None,
        ),
        # The seeded pipeline joins a new workflow.
        (
            "POST /v1/workflows",
            [f"POST {WORKFLOW}/pipelines"],
            {"workflow_uuid": body_uuid},
            {"pipeline_uuid": seeds["pipeline_uuid"]},
        ),
        (
            f"POST {WORKFLOW}/pipelines",
            [
                f"GET {WORKFLOW}/pipelines/{{workflow_pipeline_uuid}}",
                f"PUT {WORKFLOW}/pipelines/{{workflow_pipeline_uuid}}",
                f"DELETE {WORKFLOW}/pipelines/{{workflow_pipeline_uuid}}",
            ],
            {"workflow_uuid": "$request.path.workflow_uuid", "workflow_pipeline_uuid": body_uuid},
            {"pipeline_uuid": "$request.body#/pipeline_uuid"},
        ),
        (
            f"POST {WORKFLOW}/pipelines",
            [f"POST {WORKFLOW}/runs", f"GET {WORKFLOW}/pipelines"],
            {"workflow_uuid": "$request.path.workflow_uuid"},
            None,
        ),
        (
            f"POST {WORKFLOW}/runs",
            [
                f"GET {WORKFLOW}/runs/{{workflow_run_uuid}}",
                f"POST {WORKFLOW}/runs/{{workflow_run_uuid}}/cancel",
            ],
            {"workflow_uuid": "$request.path.workflow_uuid", "workflow_run_uuid": body_uuid},
            None,
        ),
        (
            f"POST {WORKFLOW}/runs",
            RUN_OPERATIONS,
            {
                "pipeline_uuid": f"{first_member}/pipeline_uuid",
                "run_uuid": f"{first_member}/pipeline_run/uuid",
            },
            None,
        ),
    ]


def with_links(document: dict[str, Any], seeds: dict[str, str]) -> dict[str, Any]:
    """A copy of the document with OpenAPI links on its operations' 200 answers."""
    document = copy.deepcopy(document)
    operation_ids = {
        f"{method.upper()} {path}": operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    for number, (source, targets, parameters, body) in enumerate(stateful_links(seeds)):
        method, path = source.split(" ", 1)
        answer = document["paths"][path][method.lower()]["responses"]["200"]
        for target in targets:
            target_path = target.split(" ", 1)[1]
            link: dict[str, Any] = {
                "operationId": operation_ids[target],
                "parameters": {
                    name: value
                    for name, value in parameters.items()
                    if f"{{{name}}}" in target_path
                },
            }
            if body is not None:
                link["requestBody"] = body
            answer.setdefault("links", {})[f"{operation_ids[target]}_{number}"] = link
    return document


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
            try:
                case.call_and_validate(checks=CHECKS, **target.call_kwargs(case))
            except FailureGroup:
                raise
            except Exception as exc:  # raised by the app itself: a 500 (traceback in the log)
                curl = case.as_curl_command()
                raise AssertionError(f"{type(exc).__name__}: {exc}\n\n{curl}") from exc

        try:
            fuzz()
        except (Exception, FailureGroup) as exc:
            failures[operation.label] = str(exc)
        if operation.method.upper() == "DELETE":
            target.seed()  # the seeds may be gone
    report = "\n\n".join(f"=== {label}\n{message}" for label, message in failures.items())
    assert not failures, f"{len(failures)} operations failed:\n\n{report}"


def test_stateful_sequences_answer_as_documented(target: Target) -> None:
    target.seed()
    machine = target.stateful_schema().as_state_machine()
    # Sequences start at the operations that create: a root with a generated uuid in its
    # path names nothing, and only spends the budget on 404s (the test above has those).
    aimless = {label for label in machine._root_labels if "{" in label}
    hidden = {normalize_name(f"RANDOM -> {label}") for label in aimless}

    class Sequences(machine):  # type: ignore[misc,valid-type]
        root_rules = machine.root_rules - hidden
        _root_labels = machine._root_labels - aimless

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

    for name in hidden:
        setattr(Sequences, name, None)  # Hypothesis only runs attributes marked as rules
    Sequences.run(settings=STATEFUL_SETTINGS)


BIG_CURSOR = encode_cursor(10**24)
JSON = {"Content-Type": "application/json"}
SURROGATE = "\\ud800"  # JSON text for a lone surrogate, which json.loads accepts


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        pytest.param("GET", f"/v1/pipelines?limit=1&cursor={BIG_CURSOR}", {}, id="cursor-int"),
        pytest.param("GET", f"{PIPELINE}/runs?cursor={BIG_CURSOR}", {}, id="runs-cursor-int"),
        pytest.param(
            "POST", f"{RUN}/artifacts?name=a%C2%80.csv", {"data": b"x"}, id="C1-in-artifact-name"
        ),
        pytest.param(
            "POST",
            "/v1/pipelines",
            {"data": f'{{"kind": "gridlabd", "name": "a{SURROGATE}"}}', "headers": JSON},
            id="surrogate-in-pipeline",
        ),
        pytest.param(
            "POST",
            "/v1/workflows",
            {"data": f'{{"name": "seed", "description": "{SURROGATE}"}}', "headers": JSON},
            id="surrogate-in-workflow",
        ),
        pytest.param(
            "POST",
            "/v1/applications",
            {"json": {"name": "a\x00", "permissions": ["ADMIN"]}},
            id="NUL-in-application-name",
        ),
        pytest.param(
            "POST",
            f"{PIPELINE}/runs",
            {"data": {"defines": f'{{"A": "{SURROGATE}"}}'}, "files": [("files", ("a.glm", b""))]},
            id="surrogate-in-multipart-defines",
        ),
    ],
)
def test_inputs_found_by_fuzzing_answer_400(
    target: Target, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    """Requests that once answered 500, kept: the derandomized examples may not meet them again."""
    target.seed()
    path = url.split("?", 1)[0]
    permission = target.permissions[(method, path)]
    assert permission is not None
    with target.client(permission) as client:
        response = client.request(method, url.format(**target.seeds), **kwargs)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message", "errors"}
