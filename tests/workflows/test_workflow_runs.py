"""Workflow runs end to end: the real engine, real queue, embedded and distributed."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.harness import FINAL, MODELS, Recorder, Service, data_rows, engine_processes

DIAMOND = MODELS / "diamond"


async def make_workflow(service: Service, models: dict[str, list[Path]]) -> dict[str, Any]:
    """A → (B, C) → D, each a gridlabd pipeline carrying its model as pipeline files."""
    response = await service.client.post("/v1/workflows", json={"name": "diamond"})
    workflow = response.json()["uuid"]
    nodes: dict[str, str] = {}
    for name, sources in (("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])):
        pipeline = await service.pipeline(kind="gridlabd", name=name)
        await service.add_files(pipeline["uuid"], models[name])
        added = await service.client.post(
            f"/v1/workflows/{workflow}/pipelines",
            json={
                "pipeline_uuid": pipeline["uuid"],
                "source_workflow_pipelines": [nodes[source] for source in sources],
            },
        )
        assert added.status_code == 200, added.text
        nodes[name] = added.json()["uuid"]
    return {"workflow": workflow, "nodes": nodes}


async def wait_workflow_run(
    service: Service,
    workflow: str,
    run: str,
    timeout: float = 120.0,  # noqa: ASYNC109
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await service.client.get(f"/v1/workflows/{workflow}/runs/{run}")
        assert response.status_code == 200, response.text
        body = dict(response.json())
        if body["state"] in FINAL and all(
            member["pipeline_run"]["state"] in FINAL for member in body["workflow_pipeline_runs"]
        ):
            return body
        assert time.monotonic() < deadline, f"workflow run still {body['state']}"
        await asyncio.sleep(0.2)


def by_node(body: dict[str, Any], made: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = {uuid: name for name, uuid in made["nodes"].items()}
    return {
        names[member["workflow_pipeline_uuid"]]: member["pipeline_run"]
        for member in body["workflow_pipeline_runs"]
    }


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def real_models() -> dict[str, list[Path]]:
    return {name: [DIAMOND / name / f"{name}.glm"] for name in "abcd"}


async def test_diamond_runs_branches_together_and_feeds_downstream(
    service: Service, recorder: Recorder
) -> None:
    made = await make_workflow(service, real_models())
    response = await service.client.post(
        f"/v1/workflows/{made['workflow']}/runs",
        json={"callback_url": f"{recorder.url}/hook"},
    )
    assert response.status_code == 200, response.text
    created = response.json()
    first = by_node(created, made)
    assert [s["state"] for s in first["a"]["states"]][:2] == ["QUEUED", "NOT_STARTED"]
    for name in "bcd":
        assert first[name]["states"][0]["state"] == "QUEUED"
        assert first[name]["inputs"] == []

    done = await wait_workflow_run(service, made["workflow"], created["uuid"])
    assert done["state"] == "COMPLETED", done
    assert [s["state"] for s in done["states"]] == ["NOT_STARTED", "RUNNING", "COMPLETED"]
    runs = by_node(done, made)
    assert all(run["state"] == "COMPLETED" for run in runs.values())
    b, c, d = runs["b"], runs["c"], runs["d"]
    assert when(b["started_at"]) < when(c["completed_at"])
    assert when(c["started_at"]) < when(b["completed_at"]), "B and C did not overlap"
    assert when(d["started_at"]) >= max(when(b["completed_at"]), when(c["completed_at"]))
    assert sorted(item["name"] for item in d["inputs"]) == ["b_out.csv", "c_out.csv"]
    assert all(item["url"] is None and item["sha256"] for item in d["inputs"])
    b_artifact = next(a for a in b["artifacts"] if a["name"] == "b_out.csv")
    assert (
        next(i for i in d["inputs"] if i["name"] == "b_out.csv")["sha256"] == (b_artifact["sha256"])
    )
    assert [s["state"] for s in d["states"]].count("NOT_STARTED") == 1 and d["attempt"] == 1
    [d_out] = d["artifacts"]
    assert d_out["name"] == "d_out.csv"
    assert len(data_rows(await service.download(d_out))) == 4320

    deadline = time.monotonic() + 10
    while True:
        workflow_states = [
            body["state"]
            for body in (recorder.payloads())
            if body.get("workflow_run_uuid") == created["uuid"]
        ]
        if workflow_states[-1:] == ["COMPLETED"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert workflow_states == ["NOT_STARTED", "RUNNING", "COMPLETED"]

    listed = await service.client.get(f"/v1/workflows/{made['workflow']}/runs")
    assert [item["uuid"] for item in listed.json()] == [created["uuid"]]


async def test_failure_cancels_the_rest(service: Service) -> None:
    models = real_models()
    models["b"] = [MODELS / "bad_syntax" / "bad_syntax.glm"]
    made = await make_workflow(service, models)
    created = (await service.client.post(f"/v1/workflows/{made['workflow']}/runs", json={})).json()
    done = await wait_workflow_run(service, made["workflow"], created["uuid"])
    assert done["state"] == "FAILED"
    runs = by_node(done, made)
    assert runs["a"]["state"] == "COMPLETED"
    assert runs["b"]["state"] == "FAILED"
    assert runs["c"]["state"] == "CANCELLED"
    assert runs["d"]["state"] == "CANCELLED"
    assert "RUNNING" not in [s["state"] for s in runs["d"]["states"]]
    deadline = time.monotonic() + 5
    while engine_processes(runs["c"]["uuid"]):
        assert time.monotonic() < deadline, "C's engine still running"
        await asyncio.sleep(0.1)


async def test_cancel_a_workflow_run_midway(service: Service) -> None:
    made = await make_workflow(service, real_models())
    created = (await service.client.post(f"/v1/workflows/{made['workflow']}/runs", json={})).json()
    url = f"/v1/workflows/{made['workflow']}/runs/{created['uuid']}"
    deadline = time.monotonic() + 60
    while True:
        runs = by_node((await service.client.get(url)).json(), made)
        if runs["a"]["state"] == "COMPLETED":
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    cancelled = await service.client.post(f"{url}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "CANCELLED"
    done = await wait_workflow_run(service, made["workflow"], created["uuid"])
    assert done["state"] == "CANCELLED"
    runs = by_node(done, made)
    assert runs["a"]["state"] == "COMPLETED"
    assert {runs[name]["state"] for name in "bcd"} <= {"CANCELLED", "COMPLETED"}
    assert runs["d"]["state"] == "CANCELLED"
    again = await service.client.post(f"{url}/cancel")
    assert again.status_code == 200


async def test_twenty_diamonds_at_once_start_each_downstream_exactly_once(
    service: Service,
) -> None:
    """Every stage is the quick model A, so B and C finish together: D must start once,
    with both artifacts (same name: the second renamed)."""
    quick = [DIAMOND / "a" / "a.glm"]
    made = await make_workflow(service, dict.fromkeys("abcd", quick))
    responses = await asyncio.gather(
        *(service.client.post(f"/v1/workflows/{made['workflow']}/runs", json={}) for _ in range(20))
    )
    assert all(response.status_code == 200 for response in responses)
    deadline = time.monotonic() + 240
    while True:  # one list request a second: polling each run would load the API more
        listed = (await service.client.get(f"/v1/workflows/{made['workflow']}/runs")).json()
        if all(item["state"] in FINAL for item in listed):
            break
        assert time.monotonic() < deadline, [item["state"] for item in listed]
        await asyncio.sleep(1)
    assert len(listed) == 20
    for done in listed:
        assert done["state"] == "COMPLETED", done
        d = by_node(done, made)["d"]
        assert [s["state"] for s in d["states"]] == [
            "QUEUED",
            "NOT_STARTED",
            "RUNNING",
            "COMPLETED",
        ]
        assert d["attempt"] == 1
        assert sorted(item["name"] for item in d["inputs"]) == ["a_out-2.csv", "a_out.csv"]
