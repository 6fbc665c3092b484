"""Application key management (ADMIN keys only)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from workflow_service.auth import service
from workflow_service.auth.dependencies import AdminApp
from workflow_service.auth.schemas import ApplicationCreate, ApplicationCreated, ApplicationOut
from workflow_service.db import SessionDep
from workflow_service.errors import error_responses
from workflow_service.pagination import PAGED_LIST, PageDep
from workflow_service.schemas import UuidPath

router = APIRouter(
    prefix="/v1/applications",
    tags=["applications"],
    responses=error_responses(400, 401, 403, 503),
)


@router.post(
    "",
    response_model=ApplicationCreated,
    summary="Create an application key",
    responses=error_responses(413),
)
async def create_application(
    body: ApplicationCreate, session: SessionDep, _: AdminApp
) -> ApplicationCreated:
    application, key = await service.create_application(session, body.name, body.permissions)
    return ApplicationCreated.model_validate(
        {**ApplicationOut.model_validate(application).model_dump(), "api_key": key}
    )


@router.get(
    "",
    response_model=list[ApplicationOut],
    summary="List live application keys",
    responses=PAGED_LIST,
)
async def list_applications(
    session: SessionDep, _: AdminApp, page: PageDep, request: Request, response: Response
) -> list[ApplicationOut]:
    rows = page.finish(list(await service.list_applications(session, page)), request, response)
    return [ApplicationOut.model_validate(row) for row in rows]


@router.delete(
    "/{application_uuid}",
    response_model=dict[str, str],
    summary="Revoke an application key",
    description="The key stops working at once. Answers `{}`.",
    responses=error_responses(404),
)
async def revoke_application(
    application_uuid: UuidPath, session: SessionDep, _: AdminApp
) -> dict[str, str]:
    await service.revoke_application(session, application_uuid)
    return {}
