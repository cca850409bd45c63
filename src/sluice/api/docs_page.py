"""The API docs page (Redoc) under the Content-Security-Policy: its start-up runs from a file
(`/static/docs-start.js`, which reads the schema's URL from the page), not an inline script.

`js_url` names the Redoc bundle; serve it from the package (no CDN: the policy allows this
server's scripts only)."""

from __future__ import annotations

from html import escape
from typing import Any, Final

from litestar import Request
from litestar.openapi.plugins import RedocRenderPlugin

START_SCRIPT: Final = "/static/docs-start.js"


class RedocFromFiles(RedocRenderPlugin):
    def __init__(self, *, js_url: str | None = None, spec_url: str = "/schema/openapi.json",
                 **kwargs: Any) -> None:
        kwargs.setdefault("path", "/redoc")
        super().__init__(js_url=js_url, google_fonts=False, **kwargs)
        self.spec_url = spec_url

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        return (
            "<!DOCTYPE html><html><head>"
            f"<title>{title}</title>{self.favicon}<meta charset=\"utf-8\"/>"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"{self.style}</head><body>"
            f"<div id=\"redoc-container\" data-spec-url=\"{escape(self.spec_url)}\"></div>"
            f"<script src=\"{escape(self.js_url)}\"></script>"
            f"<script src=\"{START_SCRIPT}\"></script>"
            "</body></html>"
        ).encode()
