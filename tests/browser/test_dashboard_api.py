"""The dashboard without a browser: pages, fragments, static files, headers, escaping."""

from __future__ import annotations

import re
from importlib import resources

import httpx

from tests.harness import Keys
from workflow_service.dashboard.graph import NODE_WIDTH, layout

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=", re.IGNORECASE)
PAGES = [
    "/ui",
    "/ui/pipelines/" + "a" * 32,
    "/ui/pipelines/" + "a" * 32 + "/runs/" + "b" * 32,
    "/ui/workflows/" + "c" * 32,
]


def assert_policy(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_root_redirects_to_the_dashboard(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui"


async def test_pages_are_shells_without_inline_code(anonymous: httpx.AsyncClient) -> None:
    for path in PAGES:
        response = await anonymous.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert_policy(response)
        assert not INLINE_SCRIPT.search(response.text), path
        assert not INLINE_STYLE.search(response.text), path
        assert 'src="/ui/static/vendor/htmx.min.js"' in response.text
    assert (await anonymous.get("/ui/pipelines/not-a-uuid")).status_code == 404


async def test_fragments_need_a_client_key(anonymous: httpx.AsyncClient, keys: Keys) -> None:
    paths = [
        "/ui/fragments/pipelines",
        "/ui/fragments/pipeline-options",
        "/ui/fragments/workflows",
        "/ui/fragments/pipelines/" + "a" * 32 + "/runs",
        "/ui/fragments/pipelines/" + "a" * 32 + "/runs/" + "b" * 32,
        "/ui/fragments/workflows/" + "c" * 32,
    ]
    for path in paths:
        assert (await anonymous.get(path)).status_code == 401, path
        worker = await anonymous.get(path, headers={"Workflow-API-Key": keys.worker})
        assert worker.status_code == 403, path
        bearer = await anonymous.get(path, headers={"Authorization": f"Bearer {keys.client}"})
        assert bearer.status_code in (200, 404), path


async def test_fragments_escape_what_clients_wrote(client: httpx.AsyncClient) -> None:
    name = "<script>alert(1)</script>"
    created = await client.post(
        "/v1/pipelines", json={"kind": "gridlabd", "name": name, "description": '"><img src=x>'}
    )
    assert created.status_code == 200, created.text
    pipeline = created.json()["uuid"]
    for path in (
        "/ui/fragments/pipelines",
        "/ui/fragments/pipeline-options",
        f"/ui/fragments/pipelines/{pipeline}/runs",
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert_policy(response)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text, path
        assert "<script>" not in response.text and "<img" not in response.text, path
    runs = await client.get(f"/ui/fragments/pipelines/{pipeline}/runs")
    assert 'hx-trigger="ui:refresh from:body"' in runs.text  # no runs: nothing to poll


async def test_run_fragment_polls_until_the_run_ends(client: httpx.AsyncClient) -> None:
    pipeline = (await client.post("/v1/pipelines", json={"kind": "gridlabd", "name": "p"})).json()
    # A run without any model fails at once; before then its fragment polls.
    run = (await client.post(f"/v1/pipelines/{pipeline['uuid']}/runs", json={})).json()
    path = f"/ui/fragments/pipelines/{pipeline['uuid']}/runs/{run['uuid']}"
    for _ in range(200):
        response = await client.get(path)
        assert response.status_code == 200
        state = re.search(r'data-state="([A-Z_]+)"', response.text)
        assert state is not None
        if state.group(1) in {"COMPLETED", "FAILED", "CANCELLED"}:
            assert "every 1s" not in response.text
            break
        assert "every 1s" in response.text
        await _pause()
    else:
        raise AssertionError("the run did not end")
    missing = await client.get(f"/ui/fragments/pipelines/{pipeline['uuid']}/runs/{'d' * 32}")
    assert missing.status_code == 404


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def test_workflow_fragment_draws_the_graph(client: httpx.AsyncClient) -> None:
    async def pipeline(name: str) -> str:
        body = {"kind": "gridlabd", "name": name}
        return str((await client.post("/v1/pipelines", json=body)).json()["uuid"])

    workflow = await client.post("/v1/workflows", json={"name": "w & <b>", "description": ""})
    uuid = workflow.json()["uuid"]

    async def add(pipeline_uuid: str, sources: list[str]) -> str:
        body = {"pipeline_uuid": pipeline_uuid, "source_workflow_pipelines": sources}
        response = await client.post(f"/v1/workflows/{uuid}/pipelines", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["uuid"])

    first = await add(await pipeline("feeder"), [])
    await add(await pipeline("analysis <i>"), [first])
    response = await client.get(f"/ui/fragments/workflows/{uuid}")
    assert response.status_code == 200
    assert_policy(response)
    assert "w &amp; &lt;b&gt;" in response.text
    assert response.text.count('class="node state-NONE"') == 2
    assert response.text.count('class="edge"') == 1
    assert "analysis &lt;i&gt;" in response.text
    listed = await client.get("/ui/fragments/workflows")
    assert f'href="/ui/workflows/{uuid}"' in listed.text


async def test_static_files_are_packaged_and_served(anonymous: httpx.AsyncClient) -> None:
    static = resources.files("workflow_service.dashboard") / "static"
    for name in (
        "app.js",
        "plot.js",
        "app.css",
        "vendor/htmx.min.js",
        "vendor/uPlot.iife.min.js",
        "vendor/uPlot.min.css",
        "vendor/htmx.LICENSE",
        "vendor/uPlot.LICENSE",
        "vendor/README.md",
    ):
        assert static.joinpath(name).is_file(), name
    templates = resources.files("workflow_service.dashboard") / "templates"
    assert templates.joinpath("base.html").is_file()
    script = await anonymous.get("/ui/static/vendor/htmx.min.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.content == static.joinpath("vendor/htmx.min.js").read_bytes()
    again = await anonymous.get(
        "/ui/static/vendor/htmx.min.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert again.status_code == 304
    css = await anonymous.get("/ui/static/app.css")
    assert css.headers["content-type"].startswith("text/css")
    assert (await anonymous.get("/ui/static/nothing.js")).status_code == 404
    assert (await anonymous.get("/ui/static/../router.py")).status_code == 404


def test_graph_layout_columns_follow_depth() -> None:
    placed = layout([(1, "a"), (2, "b"), (3, "c"), (4, "d")], [(1, 2), (1, 3), (2, 4), (3, 4)])
    x = {node.id: node.x for node in placed.nodes}
    assert x[1] < x[2] == x[3] < x[4]
    assert len(placed.edges) == 4
    assert placed.width >= 3 * NODE_WIDTH
    lone = layout([(9, "x" * 40)], [(9, 7)])
    assert lone.edges == [] and lone.nodes[0].label.endswith("…")
