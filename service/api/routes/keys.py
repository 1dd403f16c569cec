"""``/api/v1/keys``: API keys, for admins only. A new key is shown once, in the POST's answer."""

from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import AdminDep, Id, SessionDep
from service.api.errors import ADMIN_ERRORS
from service.api.examples import KEY_BODY
from service.api.schemas.responses import UtcDatetime
from service.store import keys
from service.store.orm import ApiKeyRow

router = APIRouter(prefix="/keys", tags=["keys"], responses=ADMIN_ERRORS)


class KeyCreate(BaseModel):
    # Types as documented: 0 or "true" is no boolean.
    model_config = ConfigDict(strict=True)

    tenant: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    name: str = Field("", max_length=128)
    admin: bool = Field(False, description="May create, list and revoke keys.")


class KeyPublic(BaseModel):
    id: int
    tenant: str
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    admin: bool
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> "KeyPublic":
        return cls.model_validate(row, from_attributes=True)


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(
    body: Annotated[KeyCreate, KEY_BODY], _: AdminDep, session: SessionDep
) -> KeyCreated:
    row, key = keys.create_key(session, body.tenant, body.name, body.admin)
    return KeyCreated(**KeyPublic.of(row).model_dump(), key=key)


@router.get("")
def list_keys(_: AdminDep, session: SessionDep) -> list[KeyPublic]:
    return [KeyPublic.of(r) for r in keys.list_keys(session)]


@router.delete("/{key_id}")
def revoke_key(key_id: Id, _: AdminDep, session: SessionDep) -> KeyPublic:
    """Revoke a key: it answers 401 from now on."""
    return KeyPublic.of(keys.revoke_key(session, key_id))
