"""Serves the web dashboard: its page at `/` and its assets under `/static`."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parents[1] / "dashboard" / "static"


@get("/", include_in_schema=False, media_type="text/html")
async def index() -> Response[bytes]:
    # the page holds no data: data comes from the API with the user's key
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html",
                    headers={"Cache-Control": "no-cache"})


ROUTE_HANDLERS = [
    index,
    create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False),
]
