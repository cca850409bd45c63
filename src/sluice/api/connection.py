"""GET /api/connection (the caller's connection, secrets redacted) and PATCH /api/connection
(its broker and result backend, `admin`)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, patch

from sluice.service import commands as service
from sluice.service.commands import ConnectionInfo

from . import json_body
from .auth import requires
from .deps import Db
from .errors import ApiError
from .params import AnyRequest, Caller


class ConnectionPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields left out stay as they are; null clears one."""

    broker_url: str | msgspec.UnsetType | None = msgspec.UNSET
    result_backend_url: str | msgspec.UnsetType | None = msgspec.UNSET


class ConnectionController(Controller):
    path = "/api/connection"
    tags = ["connection"]

    @get("/", summary="The caller's connection; broker URLs without their passwords",
         dependencies={"principal": requires("read")})
    async def get_connection(self, db: Db, principal: Caller) -> ConnectionInfo:
        found = await db.run(service.connection_info, principal.connection_id)
        if found is None:
            raise ApiError(404, "not_found", "the key's connection no longer exists")
        return found

    @patch("/", summary="Set the broker (and result backend) that commands act on",
           dependencies={"principal": requires("admin")})
    async def patch_connection(self, request: AnyRequest, db: Db, principal: Caller
                               ) -> ConnectionInfo:
        body = await json_body.decode(request, ConnectionPatch)
        changes = {k: v for k, v in msgspec.structs.asdict(body).items() if json_body.present(v)}
        if not changes:
            raise json_body.field_error(
                "broker_url", "give broker_url and/or result_backend_url (null clears one)")
        try:
            found = await db.run(service.set_broker, principal.connection_id, **changes)
        except service.InvalidUrl as exc:
            raise json_body.field_error(exc.field, f"{exc.field} {exc.reason}") from None
        if found is None:
            raise ApiError(404, "not_found", "the key's connection no longer exists")
        return found
