"""API keys: random, shown once, stored only as a hash; 401 and 403; revocation."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import select, text

from tests.harness import Keys
from workflow_service import db
from workflow_service.auth.models import Application
from workflow_service.auth.scheme import Permission
from workflow_service.auth.service import create_application, hash_key


async def test_keys_are_random_and_stored_only_as_hashes(database: db.Database, keys: Keys) -> None:
    async with database.sessions() as session:
        _, other = await create_application(session, "other", [Permission.PIPELINES_CLIENT])
        rows = (await session.execute(text("SELECT * FROM application"))).all()
    assert len({keys.client, keys.worker, keys.admin, other}) == 4
    assert all(len(key) >= 40 for key in (keys.client, other))
    dump = repr(rows)
    for key in (keys.client, keys.worker, keys.admin, other):
        assert key not in dump
        assert hash_key(key) in dump


async def test_header_and_bearer_are_both_accepted(
    anonymous: httpx.AsyncClient, keys: Keys
) -> None:
    by_header = await anonymous.get("/v1/pipelines", headers={"Workflow-API-Key": keys.client})
    assert by_header.status_code == 200
    by_bearer = await anonymous.get(
        "/v1/pipelines", headers={"Authorization": f"Bearer {keys.client}"}
    )
    assert by_bearer.status_code == 200


async def test_missing_unknown_and_malformed_keys_are_401(
    anonymous: httpx.AsyncClient, keys: Keys
) -> None:
    cases: list[dict[str, str]] = [
        {},
        {"Workflow-API-Key": ""},
        {"Workflow-API-Key": "wfs_not-a-key"},
        {"Workflow-API-Key": keys.client + "x"},
        {"Workflow-API-Key": "k" * 10_000},
        {"Authorization": "Basic " + keys.client},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nope"},
    ]
    for headers in cases:
        response = await anonymous.get("/v1/pipelines", headers=headers)
        assert response.status_code == 401, headers
        assert set(response.json()) == {"message", "errors"}


async def test_wrong_permission_is_403(anonymous: httpx.AsyncClient, keys: Keys) -> None:
    for key in (keys.worker, keys.admin):
        response = await anonymous.get("/v1/pipelines", headers={"Workflow-API-Key": key})
        assert response.status_code == 403
        assert "PIPELINES_CLIENT" in response.json()["message"]
    admin_only = await anonymous.get("/v1/applications", headers={"Workflow-API-Key": keys.client})
    assert admin_only.status_code == 403


async def test_admin_creates_lists_and_revokes_keys(
    anonymous: httpx.AsyncClient, keys: Keys, database: db.Database
) -> None:
    admin = {"Workflow-API-Key": keys.admin}
    created = await anonymous.post(
        "/v1/applications",
        json={"name": "worker 7", "permissions": ["PIPELINES_WORKER", "PIPELINES_CLIENT"]},
        headers=admin,
    )
    assert created.status_code == 200, created.text
    body = created.json()
    new_key = body["api_key"]
    assert body["permissions"] == ["PIPELINES_CLIENT", "PIPELINES_WORKER"]
    assert new_key.startswith(body["key_prefix"])
    listed = (await anonymous.get("/v1/applications", headers=admin)).json()
    assert body["uuid"] in [row["uuid"] for row in listed]
    assert all("api_key" not in row for row in listed)

    as_new = {"Workflow-API-Key": new_key}
    assert (await anonymous.get("/v1/pipelines", headers=as_new)).status_code == 200
    revoked = await anonymous.delete(f"/v1/applications/{body['uuid']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json() == {}
    assert (await anonymous.get("/v1/pipelines", headers=as_new)).status_code == 401
    again = await anonymous.delete(f"/v1/applications/{body['uuid']}", headers=admin)
    assert again.status_code == 404
    async with database.sessions() as session:
        row = await session.scalar(select(Application).where(Application.uuid == body["uuid"]))
    assert row is not None and row.revoked_at is not None


async def test_bad_application_requests(anonymous: httpx.AsyncClient, keys: Keys) -> None:
    admin = {"Workflow-API-Key": keys.admin}
    for body in (
        {},
        {"name": "x", "permissions": []},
        {"name": "x", "permissions": ["ROOT"]},
        {"name": "", "permissions": ["ADMIN"]},
        {"name": "x" * 101, "permissions": ["ADMIN"]},
        {"name": "x", "permissions": ["ADMIN"], "extra": 1},
    ):
        response = await anonymous.post("/v1/applications", json=body, headers=admin)
        assert response.status_code == 400, body
    unknown = await anonymous.delete("/v1/applications/" + "a" * 32, headers=admin)
    assert unknown.status_code == 404


async def test_keys_never_appear_in_logs(
    anonymous: httpx.AsyncClient, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await anonymous.get("/v1/pipelines", headers={"Workflow-API-Key": keys.client})
    await anonymous.get("/v1/pipelines", headers={"Authorization": f"Bearer {keys.worker}"})
    await anonymous.get("/v1/pipelines", headers={"Workflow-API-Key": keys.client + "typo"})
    created = await anonymous.post(
        "/v1/applications",
        json={"name": "logged?", "permissions": ["PIPELINES_CLIENT"]},
        headers={"Workflow-API-Key": keys.admin},
    )
    new_key = created.json()["api_key"]
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for key in (keys.client, keys.worker, keys.admin, new_key):
        assert key not in caplog.text
