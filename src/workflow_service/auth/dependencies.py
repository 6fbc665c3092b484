"""The auth dependency: ``Workflow-API-Key: <key>`` or ``Authorization: Bearer <key>``.

Missing or unknown key: 401. A key without the route's permission: 403 (the
original answered 401 here; see docs/api.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from workflow_service.auth.models import Application
from workflow_service.auth.scheme import API_KEY_HEADER, Permission
from workflow_service.auth.service import authenticate
from workflow_service.db import SessionDep

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="WorkflowApiKey",
    description="The application's API key (the original's header).",
)
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerKey",
    description="The same API key as a bearer token: `Authorization: Bearer <key>`.",
)

MAX_KEY_LENGTH = 200


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def require(permission: Permission) -> object:
    """A dependency that admits only applications holding ``permission``."""

    async def dependency(
        session: SessionDep,
        header_key: Annotated[str | None, Security(api_key_header)],
        bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Application:
        key = header_key or (bearer_key.credentials if bearer_key else None)
        if not key:
            raise _unauthorized(f"An API key is required: send it in the {API_KEY_HEADER} header")
        if len(key) > MAX_KEY_LENGTH:
            raise _unauthorized("Unknown API key")
        application = await authenticate(session, key)
        if application is None:
            raise _unauthorized("Unknown API key")
        if not application.has(permission):
            raise HTTPException(
                status_code=403, detail=f"This API key lacks the {permission.value} permission"
            )
        return application

    dependency.__name__ = f"require_{permission.value.lower()}"
    return Depends(dependency)


ClientApp = Annotated[Application, require(Permission.PIPELINES_CLIENT)]
WorkerApp = Annotated[Application, require(Permission.PIPELINES_WORKER)]
AdminApp = Annotated[Application, require(Permission.ADMIN)]
