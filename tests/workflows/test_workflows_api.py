"""The v1 workflows API: workflows, their pipelines and edges, and the DAG checks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


async def make_pipeline(client: httpx.AsyncClient, name: str = "p") -> str:
    response = await client.post("/v1/pipelines", json={"kind": "gridlabd", "name": name})
    return str(response.json()["uuid"])


async def make_workflow(client: httpx.AsyncClient, name: str = "w") -> str:
    response = await client.post("/v1/workflows", json={"name": name, "description": "d"})
    assert response.status_code == 200, response.text
    return str(response.json()["uuid"])


async def add(
    client: httpx.AsyncClient,
    workflow: str,
    pipeline: str,
    sources: list[str] | None = None,
    destinations: list[str] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/v1/workflows/{workflow}/pipelines",
        json={
            "pipeline_uuid": pipeline,
            "source_workflow_pipelines": sources or [],
            "destination_workflow_pipelines": destinations or [],
        },
    )


async def node(client: httpx.AsyncClient, workflow: str, uuid: str) -> dict[str, Any]:
    response = await client.get(f"/v1/workflows/{workflow}/pipelines/{uuid}")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
async def diamond(client: httpx.AsyncClient) -> dict[str, str]:
    """A → (B, C) → D, each on a pipeline of its own."""
    workflow = await make_workflow(client)
    made = {"workflow": workflow}
    made["a"] = (await add(client, workflow, await make_pipeline(client, "a"))).json()["uuid"]
    for name in ("b", "c"):
        response = await add(client, workflow, await make_pipeline(client, name), [made["a"]])
        made[name] = response.json()["uuid"]
    response = await add(client, workflow, await make_pipeline(client, "d"), [made["b"], made["c"]])
    assert response.status_code == 200, response.text
    made["d"] = response.json()["uuid"]
    return made


async def test_workflow_crud_search_and_soft_delete(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/workflows", json={"name": "study", "description": "x"})
    assert created.status_code == 200
    body = created.json()
    assert set(body) == {"uuid", "name", "description", "created_at", "updated_at"}
    uuid = body["uuid"]
    assert (await client.get(f"/v1/workflows/{uuid}")).json() == body
    updated = await client.put(f"/v1/workflows/{uuid}", json={"name": "renamed", "description": ""})
    assert updated.json()["name"] == "renamed"
    other = await make_workflow(client, "other")
    assert [w["uuid"] for w in (await client.get("/v1/workflows")).json()] == [uuid, other]
    found = await client.post("/v1/workflows/search", json={"uuids": [other, "a" * 32]})
    assert [w["uuid"] for w in found.json()] == [other]
    assert (await client.delete(f"/v1/workflows/{uuid}")).json() == {}
    assert (await client.get(f"/v1/workflows/{uuid}")).status_code == 404
    assert [w["uuid"] for w in (await client.get("/v1/workflows")).json()] == [other]
    page = await client.get("/v1/workflows", params={"limit": 1})
    assert len(page.json()) == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "n" * 51},
        {"name": "x", "description": "d" * 301},
        {"name": "x", "extra": 1},
        {"name": 3},
    ],
)
async def test_bad_workflow_bodies(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert (await client.post("/v1/workflows", json=body)).status_code == 400
    assert (await client.get("/v1/workflows")).json() == []


async def test_edges_show_both_ways(client: httpx.AsyncClient, diamond: dict[str, str]) -> None:
    workflow = diamond["workflow"]
    a = await node(client, workflow, diamond["a"])
    assert a["source_workflow_pipelines"] == []
    assert sorted(a["destination_workflow_pipelines"]) == sorted([diamond["b"], diamond["c"]])
    d = await node(client, workflow, diamond["d"])
    assert sorted(d["source_workflow_pipelines"]) == sorted([diamond["b"], diamond["c"]])
    listed = (await client.get(f"/v1/workflows/{workflow}/pipelines")).json()
    assert [item["uuid"] for item in listed] == [diamond[k] for k in "abcd"]


async def test_put_replaces_edges(client: httpx.AsyncClient, diamond: dict[str, str]) -> None:
    workflow = diamond["workflow"]
    b = await node(client, workflow, diamond["b"])
    response = await client.put(
        f"/v1/workflows/{workflow}/pipelines/{diamond['b']}",
        json={
            "pipeline_uuid": b["pipeline_uuid"],
            "source_workflow_pipelines": [],
            "destination_workflow_pipelines": [],
        },
    )
    assert response.status_code == 200, response.text
    assert (await node(client, workflow, diamond["a"]))["destination_workflow_pipelines"] == [
        diamond["c"]
    ]
    assert (await node(client, workflow, diamond["d"]))["source_workflow_pipelines"] == [
        diamond["c"]
    ]


async def test_cycles_and_self_loops_are_400_naming_the_uuid(
    client: httpx.AsyncClient, diamond: dict[str, str]
) -> None:
    workflow = diamond["workflow"]
    a = await node(client, workflow, diamond["a"])
    url = f"/v1/workflows/{workflow}/pipelines/{diamond['a']}"
    cycle = await client.put(
        url,
        json={
            "pipeline_uuid": a["pipeline_uuid"],
            "source_workflow_pipelines": [diamond["d"]],
            "destination_workflow_pipelines": [diamond["b"]],
        },
    )
    assert cycle.status_code == 400
    assert diamond["b"] in cycle.json()["message"] or diamond["d"] in cycle.json()["message"]
    assert "cycle" in cycle.json()["message"]
    self_loop = await client.put(
        url,
        json={
            "pipeline_uuid": a["pipeline_uuid"],
            "source_workflow_pipelines": [diamond["a"]],
            "destination_workflow_pipelines": [],
        },
    )
    assert self_loop.status_code == 400 and diamond["a"] in self_loop.json()["message"]
    new = await add(client, workflow, a["pipeline_uuid"], [diamond["d"]], [diamond["a"]])
    assert new.status_code == 400 and diamond["a"] in new.json()["message"]
    # nothing changed
    assert (await node(client, workflow, diamond["a"]))["source_workflow_pipelines"] == []
    assert len((await client.get(f"/v1/workflows/{workflow}/pipelines")).json()) == 4


async def test_foreign_and_unknown_uuids_are_400(
    client: httpx.AsyncClient, diamond: dict[str, str]
) -> None:
    workflow = diamond["workflow"]
    pipeline = await make_pipeline(client)
    other_workflow = await make_workflow(client, "other")
    foreign = (await add(client, other_workflow, pipeline)).json()["uuid"]
    response = await add(client, workflow, pipeline, [foreign])
    assert response.status_code == 400
    assert (
        foreign in response.json()["message"] and "another workflow" in response.json()["message"]
    )
    unknown = await add(client, workflow, pipeline, ["e" * 32])
    assert unknown.status_code == 400 and "e" * 32 in unknown.json()["message"]
    no_pipeline = await add(client, workflow, "f" * 32)
    assert no_pipeline.status_code == 400 and "f" * 32 in no_pipeline.json()["message"]
    for body in (
        {"pipeline_uuid": "bad"},
        {"pipeline_uuid": pipeline, "source_workflow_pipelines": ["bad"]},
        {"pipeline_uuid": pipeline, "source_workflow_pipelines": [diamond["a"], diamond["a"]]},
        {"pipeline_uuid": pipeline, "other": []},
    ):
        assert (
            await client.post(f"/v1/workflows/{workflow}/pipelines", json=body)
        ).status_code == 400
    assert len((await client.get(f"/v1/workflows/{workflow}/pipelines")).json()) == 4
    assert (await client.get(f"/v1/workflows/{workflow}/pipelines/{foreign}")).status_code == 404


async def test_delete_removes_edges(client: httpx.AsyncClient, diamond: dict[str, str]) -> None:
    workflow = diamond["workflow"]
    assert (await client.delete(f"/v1/workflows/{workflow}/pipelines/{diamond['b']}")).json() == {}
    assert (
        await client.get(f"/v1/workflows/{workflow}/pipelines/{diamond['b']}")
    ).status_code == 404
    assert (await node(client, workflow, diamond["a"]))["destination_workflow_pipelines"] == [
        diamond["c"]
    ]
    assert (await node(client, workflow, diamond["d"]))["source_workflow_pipelines"] == [
        diamond["c"]
    ]


async def test_pipeline_used_by_a_workflow_cannot_be_deleted(
    client: httpx.AsyncClient, diamond: dict[str, str]
) -> None:
    workflow = diamond["workflow"]
    a = await node(client, workflow, diamond["a"])
    refused = await client.delete(f"/v1/pipelines/{a['pipeline_uuid']}")
    assert refused.status_code == 400 and "workflow" in refused.json()["message"]
    assert (await client.get(f"/v1/pipelines/{a['pipeline_uuid']}")).status_code == 200
    await client.delete(f"/v1/workflows/{workflow}/pipelines/{diamond['a']}")
    assert (await client.delete(f"/v1/pipelines/{a['pipeline_uuid']}")).status_code == 200


async def test_workflow_without_pipelines_cannot_run(client: httpx.AsyncClient) -> None:
    workflow = await make_workflow(client)
    response = await client.post(f"/v1/workflows/{workflow}/runs", json={})
    assert response.status_code == 400 and "no pipelines" in response.json()["message"]
    assert (await client.get(f"/v1/workflows/{workflow}/runs")).json() == []
    assert (await client.post(f"/v1/workflows/{'a' * 32}/runs", json={})).status_code == 404
