from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from services.registry.auth import schemas, service
from services.registry.models import SERVICE, User
from shared.auth import Principal
from shared.http import CurrentPrincipal, Uow, runtime_of, service_router
from shared.pagination import Cursor, Limit, Page

router = service_router(SERVICE, tags=["auth"])


@router.post(
    "/auth/token",
    response_model=schemas.Token,
    summary="Sign in (OAuth2 password flow) and get a bearer token",
)
async def token(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> schemas.Token:
    runtime = runtime_of(request)
    async with runtime.uow(Principal.system("sign-in")) as uow:
        access_token, expires_in = await service.sign_in(
            uow,
            username=form.username,
            password=form.password,
            settings=runtime.settings,
            kv=runtime.kv,
        )
    return schemas.Token(access_token=access_token, expires_in=expires_in)


@router.get("/auth/me", response_model=schemas.Me, summary="Who you are and what you may see")
async def me(principal: CurrentPrincipal) -> schemas.Me:
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
        ),
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
