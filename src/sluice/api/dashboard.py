"""Serves the web dashboard: its page at `/` and its assets under `/static`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parents[1] / "dashboard" / "static"
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


@get("/", include_in_schema=False, media_type="text/html")
async def index() -> Response[bytes]:
    # the page holds no data: data comes from the API with the user's key
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html",
                    headers={"Cache-Control": "no-cache"})


ROUTE_HANDLERS = [
    index,
    create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False,
                               guards=[_file_name_guard]),
]
