"""Walks every route of the app: 401 without a key, 403 with a key lacking the
permission. A route added later without auth fails here unless it is listed
as public below.
"""

from __future__ import annotations

import re

import httpx
from fastapi.routing import APIRoute, iter_route_contexts

from tests.harness import Keys
from workflow_service.app import create_app
from workflow_service.auth.scheme import Permission
from workflow_service.settings import Settings

PUBLIC = {"/healthcheck", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Prometheus scrapers hold no key (docs/deployment.md#metrics-and-logs; METRICS_ENABLED).
PUBLIC |= {"/metrics"}
# The dashboard's page shells and static files; its fragments (/ui/fragments/...) need a key.
PUBLIC |= {
    "/",
    "/ui",
    "/ui/pipelines/{pipeline_uuid}",
    "/ui/pipelines/{pipeline_uuid}/runs/{run_uuid}",
    "/ui/workflows/{workflow_uuid}",
    "/ui/static/{path:path}",
}


def required_permission(route: APIRoute) -> Permission | None:
    found = {
        dependency.call.__name__.removeprefix("require_").upper()
        for dependency in route.dependant.dependencies
        if dependency.call is not None
        and getattr(dependency.call, "__name__", "").startswith("require_")
    }
    assert len(found) <= 1, f"{route.path} requires several permissions: {found}"
    return Permission(found.pop()) if found else None


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0" * 32, path)


def other_key(keys: Keys, permission: Permission) -> str:
    return keys.admin if permission is not Permission.ADMIN else keys.client


async def test_every_route_requires_its_permission(
    settings: Settings, anonymous: httpx.AsyncClient, keys: Keys
) -> None:
    app = create_app(settings)
    checked = 0
    for context in iter_route_contexts(app.routes):
        path = context.path
        if path in PUBLIC:
            continue
        route = context.original_route
        assert isinstance(route, APIRoute), f"{path}: not an API route, and not listed as public"
        assert path is not None and context.methods
        permission = required_permission(route)
        assert permission is not None, f"{path} has no permission dependency"
        for method in context.methods - {"HEAD", "OPTIONS"}:
            url = concrete(path)
            missing = await anonymous.request(method, url)
            assert missing.status_code == 401, (method, url, missing.text)
            lacking = await anonymous.request(
                method, url, headers={"Workflow-API-Key": other_key(keys, permission)}
            )
            assert lacking.status_code == 403, (method, url, lacking.text)
            holding = await anonymous.request(
                method, url, headers={"Workflow-API-Key": keys.for_permission(permission)}
            )
            assert holding.status_code not in {401, 403}, (method, url, holding.text)
            checked += 1
    assert checked >= 9


async def test_public_routes_need_no_key(anonymous: httpx.AsyncClient) -> None:
    for path in ("/healthcheck", "/readyz", "/openapi.json", "/docs"):
        assert (await anonymous.get(path)).status_code == 200, path
