"""What controllers are given by dependency injection: the `db` (a
`sluice.service.database.Database`, the app's pool) and, per request, the authenticated
`principal` (`sluice.api.auth.requires`).

    @get("/api/things", dependencies={"principal": requires("read")})
    async def things(db: Db, principal: NamedDependency[Principal]) -> Things:
        return await db.run(reader.list_things, principal.connection_id)
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from sluice.service.database import Database

_STATE_KEY: Final = "db"


def database_of(state: State) -> Database:
    db = state.get(_STATE_KEY)
    if not isinstance(db, Database):  # only between app creation and the end of start-up
        raise RuntimeError("the database pool is not open yet")
    return db


def request_db(request: Request[Any, Any, Any]) -> Database:
    return database_of(request.app.state)


def set_database(state: State, db: Database | None) -> None:
    if db is None:
        state.pop(_STATE_KEY, None)
    else:
        state[_STATE_KEY] = db


PROVIDE_DB: Final = Provide(database_of, sync_to_thread=False)
# a controller's parameter `db: Db` receives it
Db: TypeAlias = NamedDependency[Database]
