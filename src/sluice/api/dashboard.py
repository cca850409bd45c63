"""Serves the web dashboard: its pages (one URL each, the same shell; the page's script reads
the URL), the sign-in page at `/login`, and the assets under `/static`.

A page asked for without a live session redirects to `/login?next=<the page>`. Pages hold no
data: it comes from the API with the session's cookie."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from litestar import Request, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from sluice.store import sessions

from .auth import SESSION_COOKIE
from .deps import Db

STATIC: Final = Path(__file__).resolve().parents[1] / "dashboard" / "static"
_NO_CACHE: Final = {"Cache-Control": "no-cache"}
# What a file name of ours can be: asked for anything else, the file system would fail
# (ENAMETOOLONG, an embedded NUL) instead of saying there is no such file.
_MAX_NAME_BYTES: Final = 255
_MAX_PATH_BYTES: Final = 1024


def _file_name_guard(connection: ASGIConnection[Any, Any, Any, Any], _: object) -> None:
    path = connection.scope.get("path", "")
    if "\x00" in path or len(path.encode("utf-8", "surrogatepass")) > _MAX_PATH_BYTES or any(
            len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES
            for part in path.split("/")):
        raise NotFoundException("no such file")


def _html(name: str) -> Response[bytes]:
    return Response((STATIC / name).read_bytes(), media_type="text/html", headers=_NO_CACHE)


async def _shell(request: Request[Any, Any, Any], db: Db) -> Response[bytes] | Redirect:
    token = request.cookies.get(SESSION_COOKIE)
    record = await db.run(sessions.lookup, token) if token else None
    if record is None or record.revoked:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(here, safe='')}", status_code=303)
    return _html("index.html")


_PAGE: Final[dict[str, Any]] = {"include_in_schema": False, "media_type": "text/html"}


# Every page is the same shell; its script reads the URL. The path parameters only route.
PAGES: Final = ["/", "/jobs", "/jobs/{job_id:str}", "/workers", "/workers/{hostname:str}",
                "/queues", "/queues/{name:str}", "/commands"]


@get(PAGES, **_PAGE)
async def page(request: Request[Any, Any, Any], db: Db) -> Response[bytes] | Redirect:
    return await _shell(request, db)


@get("/login", **_PAGE)
async def login_page() -> Response[bytes]:
    return _html("login.html")


ROUTE_HANDLERS: Final = [
    page, login_page,
    create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False,
                               guards=[_file_name_guard]),
]
