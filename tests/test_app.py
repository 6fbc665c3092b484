"""Health, readiness, error shapes outside the domains, and the OpenAPI document."""

from __future__ import annotations

import json
import re

import httpx

from tests.harness import free_port
from workflow_service import db
from workflow_service.app import create_app
from workflow_service.settings import Settings


async def test_healthcheck_answers_ok(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthcheck")
    assert response.status_code == 200 and response.text == "OK"


async def test_readyz_checks_the_database(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "queue": "ok", "storage": "ok", "sandbox": "ok"},
    }


async def test_readyz_is_503_when_the_database_is_unreachable(
    settings: Settings, database: db.Database
) -> None:
    app = create_app(settings, database)
    gone = db.create_database(
        Settings(database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        app.state.database = gone  # the database goes away after start-up
        response = await client.get("/readyz")
        app.state.database = database
    await gone.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["message"] == "Not ready" and list(body["errors"]) == ["database"]


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404 and set(missing.json()) == {"message", "errors"}
    wrong_method = await client.patch("/v1/pipelines")
    assert wrong_method.status_code == 405 and set(wrong_method.json()) == {"message", "errors"}


async def test_declared_body_over_limit_is_refused_before_reading(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/pipelines",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(10**12)},
    )
    assert response.status_code == 413
    assert "MAX_CONTENT_LENGTH" in response.json()["message"]


async def test_openapi_document(anonymous: httpx.AsyncClient) -> None:
    document = (await anonymous.get("/openapi.json")).json()
    names = set(document["components"]["schemas"])
    referenced = set(re.findall(r"#/components/schemas/(\w+)", json.dumps(document)))
    assert referenced <= names, referenced - names
    schemes = document["components"]["securitySchemes"]
    assert schemes["WorkflowApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Workflow-API-Key",
        "description": schemes["WorkflowApiKey"]["description"],
    }
    assert schemes["BearerKey"]["scheme"] == "bearer"
    schemas = document["components"]["schemas"]
    assert "ErrorResponse" in schemas and "HTTPValidationError" not in schemas
    assert schemas["ErrorResponse"]["examples"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if path.startswith("/v1/"):
                assert operation.get("security"), (method, path)
                statuses = ["401", "403"]
                queried = [p for p in operation.get("parameters", []) if p["in"] != "path"]
                if "requestBody" in operation or queried:
                    statuses.append("400")
                for status in statuses:
                    ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (method, path, status)
                assert "200" in responses and operation.get("summary"), (method, path)
    create = document["paths"]["/v1/pipelines"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]
    assert schemas["GridlabdPipeline"]["examples"] and schemas["ScriptPipeline"]["examples"]
    assert schemas["PipelineOut"]["examples"]
    assert "404" in document["paths"]["/v1/pipelines/{pipeline_uuid}"]["get"]["responses"]


async def test_docs_page_loads(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower() and "/openapi.json" in response.text
