"""The caller's API tokens."""

from __future__ import annotations

from fastapi import APIRouter

from hangar.api.auth import Reader, Writer
from hangar.api.context import HangarDep
from hangar.api.schemas import TokenCreatedOut, TokenIn, TokenOut

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


@router.get("")
async def list_tokens(principal: Reader, hangar: HangarDep) -> list[TokenOut]:
    tokens = await hangar.users.list_tokens(principal.user.id)
    return [TokenOut.model_validate(token) for token in tokens]


@router.post("", status_code=201)
async def create_token(body: TokenIn, principal: Writer, hangar: HangarDep) -> TokenCreatedOut:
    token, secret = await hangar.users.create_token(principal.user.id, body.name)
    return TokenCreatedOut.model_validate(
        {**TokenOut.model_validate(token).model_dump(), "token": secret}
    )


@router.delete("/{token_id}", status_code=204)
async def revoke_token(token_id: str, principal: Writer, hangar: HangarDep) -> None:
    await hangar.users.revoke_token(token_id, principal.user.id)
