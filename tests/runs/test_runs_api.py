"""The runs API itself (no engine): state PUT, console, artifacts, nesting, files, lists."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.harness import Keys
from workflow_service import db
from workflow_service.pagination import Page
from workflow_service.pipelines.repository import find_pipeline
from workflow_service.runs.repository import list_runs
from workflow_service.runs.service import RunRequest, create_run


@pytest.fixture
async def pipeline(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/v1/pipelines", json={"kind": "gridlabd", "name": "p"})
    return dict(response.json())


async def queued_run(app: FastAPI, database: db.Database, pipeline_uuid: str) -> str:
    """A run that no worker picks up (QUEUED, as a workflow's waiting run)."""
    async with database.sessions() as session:
        pipeline = await find_pipeline(session, pipeline_uuid)
        assert pipeline is not None
        run = await create_run(
            session, app.state.runtime, pipeline, RunRequest([], [], None, {}), start=False
        )
        return run.uuid


def as_worker(keys: Keys) -> dict[str, str]:
    return {"Workflow-API-Key": keys.worker}


async def test_state_machine_over_http(
    app: FastAPI,
    database: db.Database,
    client: httpx.AsyncClient,
    keys: Keys,
    pipeline: dict[str, Any],
) -> None:
    run_uuid = await queued_run(app, database, pipeline["uuid"])
    url = f"/v1/pipelines/{pipeline['uuid']}/runs/{run_uuid}"
    worker = as_worker(keys)

    async def put(state: str, **extra: Any) -> httpx.Response:
        return await client.put(f"{url}/state", json={"state": state, **extra}, headers=worker)

    assert (await client.get(url)).json()["state"] == "QUEUED"
    assert (await put("NOT_STARTED")).json() == {}
    assert (await put("NOT_STARTED")).status_code == 200  # same state again: no-op
    refused = await put("COMPLETED")
    assert refused.status_code == 400 and "NOT_STARTED" in refused.json()["message"]
    assert (await put("RUNNING")).status_code == 200
    assert (await put("RUNNING")).status_code == 200
    assert (
        await put("FAILED", exit_code=4, failure_reason="the simulation failed")
    ).status_code == 200
    assert (await put("RUNNING")).status_code == 400
    run = (await client.get(url)).json()
    assert [s["state"] for s in run["states"]] == ["QUEUED", "NOT_STARTED", "RUNNING", "FAILED"]
    assert run["exit_code"] == 4 and run["failure_reason"] == "the simulation failed"
    assert run["attempt"] == 1 and run["started_at"] and run["completed_at"]
    assert (await put("SLEEPING")).status_code == 400
    as_client = await client.put(f"{url}/state", json={"state": "RUNNING"})
    assert as_client.status_code == 403


async def test_a_claim_takes_a_run_once_and_answers_its_job(
    app: FastAPI,
    database: db.Database,
    client: httpx.AsyncClient,
    keys: Keys,
    pipeline: dict[str, Any],
) -> None:
    run_uuid = await queued_run(app, database, pipeline["uuid"])
    url = f"/v1/pipelines/{pipeline['uuid']}/runs/{run_uuid}"
    worker = as_worker(keys)
    mine, theirs = "a" * 32, "b" * 32

    refused = await client.post(f"{url}/claim", json={"claim": mine}, headers=worker)
    assert refused.status_code == 400 and "QUEUED" in refused.json()["message"]
    assert (
        await client.put(f"{url}/state", json={"state": "NOT_STARTED"}, headers=worker)
    ).is_success
    job = await client.post(f"{url}/claim", json={"claim": mine}, headers=worker)
    assert job.status_code == 200, job.text
    assert job.json()["run_uuid"] == run_uuid and job.json()["kind"] == "gridlabd"
    assert (await client.get(url)).json()["state"] == "RUNNING"
    again = await client.post(f"{url}/claim", json={"claim": mine}, headers=worker)
    assert again.status_code == 200 and again.json() == job.json()  # a retried request
    other = await client.post(f"{url}/claim", json={"claim": theirs}, headers=worker)
    assert other.status_code == 400
    run = (await client.get(url)).json()
    assert [s["state"] for s in run["states"]] == ["QUEUED", "NOT_STARTED", "RUNNING"]
    assert run["attempt"] == 1
    as_client = await client.post(f"{url}/claim", json={"claim": mine})
    assert as_client.status_code == 403


async def test_console_appends_are_idempotent(
    app: FastAPI,
    database: db.Database,
    client: httpx.AsyncClient,
    keys: Keys,
    pipeline: dict[str, Any],
) -> None:
    run_uuid = await queued_run(app, database, pipeline["uuid"])
    url = f"/v1/pipelines/{pipeline['uuid']}/runs/{run_uuid}/console"
    worker = as_worker(keys)
    first = {"std_err": {"offset": 0, "data": "line 1\n"}, "std_out": {"offset": 0, "data": "o"}}
    assert (await client.post(url, json=first, headers=worker)).json()["std_err_size"] == 7
    again = await client.post(url, json=first, headers=worker)
    assert again.status_code == 200 and again.json()["std_err_size"] == 7
    overlap = {"std_err": {"offset": 0, "data": "line 1\nline 2\n"}}
    assert (await client.post(url, json=overlap, headers=worker)).json()["std_err_size"] == 14
    gap = await client.post(url, json={"std_err": {"offset": 99, "data": "x"}}, headers=worker)
    assert gap.status_code == 400
    assert (await client.post(url, json={}, headers=worker)).status_code == 200  # heartbeat
    got = (await client.get(url)).json()
    assert got == {
        "std_out": "o",
        "std_err": "line 1\nline 2\n",
        "std_out_size": 1,
        "std_err_size": 14,
    }

    replaced = await client.put(url, json={"std_out": "all", "std_err": "new"}, headers=worker)
    assert replaced.status_code == 200 and replaced.json() == {}
    assert (await client.get(url)).json()["std_err"] == "new"
    assert (await client.put(url, json={"std_out": "x"}, headers=worker)).status_code == 400
    assert (await client.post(url, json=first)).status_code == 403


async def test_runs_are_nested_under_their_pipeline(
    app: FastAPI,
    database: db.Database,
    client: httpx.AsyncClient,
    keys: Keys,
    pipeline: dict[str, Any],
) -> None:
    run_uuid = await queued_run(app, database, pipeline["uuid"])
    other = (await client.post("/v1/pipelines", json={"kind": "gridlabd", "name": "o"})).json()
    wrong = f"/v1/pipelines/{other['uuid']}/runs/{run_uuid}"
    for method, path, kwargs in [
        ("GET", "", {}),
        ("GET", "/console", {}),
        ("POST", "/cancel", {}),
        ("DELETE", "", {}),
        ("PUT", "/state", {"json": {"state": "NOT_STARTED"}, "headers": as_worker(keys)}),
        ("POST", "/claim", {"json": {"claim": "a" * 32}, "headers": as_worker(keys)}),
    ]:
        response = await client.request(method, wrong + path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    assert (
        await client.get(f"/v1/pipelines/{pipeline['uuid']}/runs/{run_uuid}")
    ).status_code == 200
    assert (
        await client.get(f"/v1/pipelines/{pipeline['uuid']}/runs/{'a' * 32}")
    ).status_code == 404


async def test_artifact_upload_register_and_download(
    app: FastAPI,
    database: db.Database,
    client: httpx.AsyncClient,
    keys: Keys,
    pipeline: dict[str, Any],
) -> None:
    run_uuid = await queued_run(app, database, pipeline["uuid"])
    base = f"/v1/pipelines/{pipeline['uuid']}/runs/{run_uuid}"
    worker = as_worker(keys)
    body = b"timestamp,value\n1,2\n"
    uploaded = await client.post(
        f"{base}/artifacts",
        params={"name": "out.csv"},
        content=body,
        headers={**worker, "Content-Type": "text/csv"},
    )
    assert uploaded.status_code == 200 and uploaded.json() == {}
    nested = await client.post(
        f"{base}/artifacts", params={"name": "plots/v.csv"}, content=b"v", headers=worker
    )
    assert nested.status_code == 200
    for bad in ("../x.csv", "/etc/passwd", "a/../b", "", "a\\b", "x\x00y"):
        refused = await client.post(
            f"{base}/artifacts", params={"name": bad}, content=b"x", headers=worker
        )
        assert refused.status_code == 400, bad
    missing_name = await client.post(f"{base}/artifacts", content=b"x", headers=worker)
    assert missing_name.status_code == 400

    run = (await client.get(base)).json()
    assert sorted(a["name"] for a in run["artifacts"]) == ["out.csv", "plots/v.csv"]
    artifact = next(a for a in run["artifacts"] if a["name"] == "out.csv")
    assert artifact["sha256"] == hashlib.sha256(body).hexdigest() and artifact["size"] == len(body)
    assert artifact["url"].endswith(f"/v1/artifacts/{artifact['uuid']}")
    download = await client.get(f"/v1/artifacts/{artifact['uuid']}")
    assert download.status_code == 200 and download.content == body
    assert download.headers["content-disposition"].startswith("attachment;")
    assert 'filename="out.csv"' in download.headers["content-disposition"]
    assert (await client.get(f"/v1/artifacts/{'b' * 32}")).status_code == 404

    again = await client.post(
        f"{base}/artifacts", params={"name": "out.csv"}, content=b"replaced", headers=worker
    )
    assert again.status_code == 200
    run = (await client.get(base)).json()
    assert len(run["artifacts"]) == 2  # a repeated name replaces, never duplicates
    replaced = next(a for a in run["artifacts"] if a["name"] == "out.csv")
    assert (await client.get(f"/v1/artifacts/{replaced['uuid']}")).content == b"replaced"

    registration = {
        "name": "direct.csv",
        "key": f"{pipeline['uuid']}/{'c' * 32}/x-direct.csv",
        "size": 1,
        "sha256": "0" * 64,
        "content_type": "text/csv",
    }
    outside = await client.post(f"{base}/artifacts/register", json=registration, headers=worker)
    assert outside.status_code == 400 and "outside" in outside.json()["message"]
    absent = {**registration, "key": f"{pipeline['uuid']}/{run_uuid}/x-direct.csv"}
    missing = await client.post(f"{base}/artifacts/register", json=absent, headers=worker)
    assert missing.status_code == 400


async def test_list_paginates_and_delete_is_soft(
    app: FastAPI, database: db.Database, client: httpx.AsyncClient, pipeline: dict[str, Any]
) -> None:
    made = [await queued_run(app, database, pipeline["uuid"]) for _ in range(5)]
    url = f"/v1/pipelines/{pipeline['uuid']}/runs"
    whole = (await client.get(url)).json()
    assert [run["uuid"] for run in whole] == made
    assert [run["sequence"] for run in whole] == [1, 2, 3, 4, 5]
    page = await client.get(url, params={"limit": 2})
    assert [run["uuid"] for run in page.json()] == made[:2]
    second = await client.get(url, params={"limit": 2, "cursor": page.headers["X-Next-Cursor"]})
    assert [run["uuid"] for run in second.json()] == made[2:4]

    deleted = await client.delete(f"{url}/{made[0]}")
    assert deleted.status_code == 200 and deleted.json() == {}
    assert (await client.get(f"{url}/{made[0]}")).status_code == 404
    assert [run["uuid"] for run in (await client.get(url)).json()] == made[1:]


async def test_cancel_queued_run_and_refuse_cancelling_a_finished_one(
    app: FastAPI,
    database: db.Database,
    client: httpx.AsyncClient,
    keys: Keys,
    pipeline: dict[str, Any],
) -> None:
    run_uuid = await queued_run(app, database, pipeline["uuid"])
    url = f"/v1/pipelines/{pipeline['uuid']}/runs/{run_uuid}"
    cancelled = await client.post(f"{url}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "CANCELLED"
    other = await queued_run(app, database, pipeline["uuid"])
    other_url = f"/v1/pipelines/{pipeline['uuid']}/runs/{other}"
    for state in ("NOT_STARTED", "RUNNING", "COMPLETED"):
        await client.put(f"{other_url}/state", json={"state": state}, headers=as_worker(keys))
    refused = await client.post(f"{other_url}/cancel")
    assert refused.status_code == 400 and "COMPLETED" in refused.json()["message"]


async def test_pipeline_files(client: httpx.AsyncClient, pipeline: dict[str, Any]) -> None:
    url = f"/v1/pipelines/{pipeline['uuid']}/files"
    added = await client.post(
        url, files=[("files", ("a.glm", b"one")), ("files", ("b.csv", b"two"))]
    )
    assert added.status_code == 200, added.text
    assert [(f["name"], f["size"]) for f in added.json()] == [("a.glm", 3), ("b.csv", 3)]
    replaced = await client.post(url, files=[("files", ("a.glm", b"three"))])
    assert [(f["name"], f["size"]) for f in replaced.json()] == [("a.glm", 5), ("b.csv", 3)]
    assert (await client.delete(f"{url}/b.csv")).json() == {}
    assert [f["name"] for f in (await client.get(url)).json()] == ["a.glm"]
    assert (await client.delete(f"{url}/b.csv")).status_code == 404
    assert (await client.post(url, files=[("files", ("../x", b"x"))])).status_code == 400
    assert (await client.post(url, json={"files": []})).status_code == 400
    assert (await client.post(url, files=[("other", ("x.glm", b"x"))])).status_code == 400
    script = (
        await client.post(
            "/v1/pipelines", json={"name": "s", "docker_image_url": "i", "repository_ssh_url": "r"}
        )
    ).json()
    refused = await client.post(
        f"/v1/pipelines/{script['uuid']}/files", files=[("files", ("a.glm", b"x"))]
    )
    assert refused.status_code == 400
    assert (await client.get(f"/v1/pipelines/{'d' * 32}/files")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [{"name": "x.csv", "url": "ftp://example.com/x"}]},
        {"inputs": [{"name": "x.csv", "url": "not a url"}]},
        {"inputs": [{"name": "x.csv"}]},
        {"inputs": [{"name": "a.csv", "url": "http://127.0.0.1:9/a"}] * 2},
        {"inputs": "x"},
        {"callback_url": "file:///etc/passwd"},
        {"callback_url": "http://user:pw@127.0.0.1/x"},
        {"defines": {"bad name": "1"}},
        {"defines": {"OK": "two\nlines"}},
        {"unknown": 1},
    ],
)
async def test_bad_run_bodies_are_400(
    client: httpx.AsyncClient, pipeline: dict[str, Any], body: dict[str, Any]
) -> None:
    url = f"/v1/pipelines/{pipeline['uuid']}/runs"
    response = await client.post(url, json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message", "errors"}
    assert (await client.get(url)).json() == []


async def test_too_many_inputs_is_400(
    settings: Any, client: httpx.AsyncClient, pipeline: dict[str, Any]
) -> None:
    limit = settings.max_inputs_per_run
    inputs = [{"name": f"{i}.csv", "url": f"http://127.0.0.1:9/{i}"} for i in range(limit + 1)]
    response = await client.post(f"/v1/pipelines/{pipeline['uuid']}/runs", json={"inputs": inputs})
    assert response.status_code == 400 and "inputs" in response.json()["errors"]


async def test_concurrent_creations_get_distinct_sequences(
    app: FastAPI, database: db.Database, pipeline: dict[str, Any]
) -> None:
    made = await asyncio.gather(*(queued_run(app, database, pipeline["uuid"]) for _ in range(8)))
    async with database.sessions() as session:
        found = await find_pipeline(session, pipeline["uuid"])
        assert found is not None
        runs = await list_runs(session, found, Page(limit=None, after_id=None))
    assert sorted(run.uuid for run in runs) == sorted(made)
    assert sorted(run.sequence for run in runs) == list(range(1, 9))
