import uuid
from typing import Annotated, Any

from fastapi import Form, Request, Response

from services.registry.auth import accounts, schemas, service, sessions
from services.registry.models import SERVICE, User
from shared.auth import Principal
from shared.http import CurrentPrincipal, Uow, runtime_of, service_router
from shared.pagination import Cursor, Limit, Page
from shared.problems import Invalid

router = service_router(SERVICE, tags=["auth"])


def _address(request: Request) -> str:
    """The caller's address (the gateway's X-Forwarded-For, trusted by `cordon serve`)."""
    return request.client.host if request.client else "unknown"


def _answer(tokens: sessions.Tokens) -> schemas.Token:
    return schemas.Token(
        access_token=tokens.access_token,
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        refresh_expires_in=tokens.refresh_expires_in,
    )


@router.post(
    "/auth/token",
    response_model=schemas.Token,
    summary="Sign in (OAuth2 password flow), or spend a refresh token (grant_type=refresh_token)",
    responses={
        400: {"description": "The form could not be read"},
        401: {
            "description": "Unknown user, wrong password (the two look the same) or a spent "
            "refresh token"
        },
        429: {"description": "Too many failed sign-ins; see Retry-After"},
    },
)
async def token(request: Request, form: Annotated[schemas.TokenForm, Form()]) -> schemas.Token:
    if form.grant_type == "refresh_token":
        if not form.refresh_token:
            raise Invalid.on("refresh_token", "required with grant_type=refresh_token")
        return await _refreshed(request, form.refresh_token)
    if not form.username or form.password is None:
        raise Invalid.on("username" if not form.username else "password", "required to sign in")
    runtime = runtime_of(request)
    async with runtime.uow(Principal.system("sign-in")) as uow:
        tokens = await service.sign_in(
            uow,
            username=form.username,
            password=form.password,
            address=_address(request),
            settings=runtime.settings,
        )
        await uow.commit()
    return _answer(tokens)


# What spending a refresh token can answer besides its success (sessions fail closed).
SPENT: dict[int | str, dict[str, Any]] = {
    401: {"description": "The refresh token is unknown, spent, ended or expired: sign in again"},
    503: {"description": "Sessions cannot be checked right now; see Retry-After"},
}


@router.post(
    "/auth/refresh",
    response_model=schemas.Token,
    summary="Spend a refresh token for a new access and refresh token",
    description="Each refresh token works once; using one twice ends its session (it was "
    "copied). The new access token carries the role and scope the account has now.",
    responses=SPENT,
)
async def refresh(request: Request, body: schemas.RefreshIn) -> schemas.Token:
    return await _refreshed(request, body.refresh_token)


async def _refreshed(request: Request, refresh_token: str) -> schemas.Token:
    runtime = runtime_of(request)
    async with runtime.uow(Principal.system("refresh")) as uow:
        try:
            tokens = await service.refresh(
                uow, refresh_token=refresh_token, settings=runtime.settings
            )
        except sessions.ReplayedRefreshToken:
            await uow.commit()  # the session it ended stays ended
            raise
        await uow.commit()
    return _answer(tokens)


@router.post(
    "/auth/sign-out",
    status_code=204,
    summary="End the session of a refresh token, its access tokens included",
    responses=SPENT,
)
async def sign_out(request: Request, body: schemas.RefreshIn) -> Response:
    async with runtime_of(request).uow(Principal.system("sign-out")) as uow:
        await sessions.sign_out(uow, refresh_token=body.refresh_token)
        await uow.commit()
    return Response(status_code=204)


@router.post(
    "/auth/password",
    status_code=204,
    summary="Change your own password; every session of your account ends",
    responses={429: {"description": "Too many wrong current passwords; see Retry-After"}},
)
async def change_password(request: Request, body: schemas.PasswordChange, uow: Uow) -> Response:
    await accounts.change_own_password(
        uow, data=body, address=_address(request), settings=runtime_of(request).settings
    )
    return Response(status_code=204)


@router.get("/auth/me", response_model=schemas.Me, summary="Who you are and what you may see")
async def me(principal: CurrentPrincipal, request: Request) -> schemas.Me:
    scope = principal.scope
    return schemas.Me(
        id=principal.id,
        username=principal.username,
        role=principal.role,
        scope=schemas.ScopeOut(
            kind=scope.kind.value,
            towns=sorted(scope.towns),
            committees=sorted(scope.committees),
            compounds=sorted(scope.compounds),
            buildings=sorted(scope.buildings),
            entire_compounds=sorted(scope.entire_compounds),
        ),
        time_zone=runtime_of(request).settings.time_zone,
    )


@router.post("/users", status_code=201, response_model=schemas.UserOut, summary="Open an account")
async def create_user(body: schemas.UserCreate, uow: Uow) -> User:
    return await service.create_user(uow, data=body)


@router.get(
    "/users",
    response_model=Page[schemas.UserOut],
    summary="Accounts in your scope",
    description="For the roles that manage accounts; in pages, ordered by id.",
)
async def list_users(uow: Uow, cursor: Cursor = None, limit: Limit = 100) -> Page[schemas.UserOut]:
    users, following = await service.list_users(uow, cursor=cursor, limit=limit)
    return Page(items=[schemas.UserOut.model_validate(u) for u in users], next_cursor=following)


@router.patch(
    "/users/{user_id}",
    response_model=schemas.UserOut,
    summary="Change an account's role, committee or password",
    description="The account's access tokens end at once in every service; a new password "
    "ends its refresh tokens too.",
)
async def update_user(user_id: uuid.UUID, body: schemas.UserUpdate, uow: Uow) -> User:
    return await accounts.update_user(uow, user_id=user_id, data=body)


@router.post(
    "/users/{user_id}/deactivate",
    response_model=schemas.UserOut,
    summary="Deactivate an account: it cannot sign in, and its sessions end at once",
)
async def deactivate_user(user_id: uuid.UUID, uow: Uow) -> User:
    return await accounts.set_active(uow, user_id=user_id, active=False)


@router.post(
    "/users/{user_id}/reactivate",
    response_model=schemas.UserOut,
    summary="Let a deactivated account sign in again",
)
async def reactivate_user(user_id: uuid.UUID, uow: Uow) -> User:
    return await accounts.set_active(uow, user_id=user_id, active=True)
