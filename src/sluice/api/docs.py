"""The API docs at `/schema`: Swagger UI served from the package (no CDN: the page works
offline), started by a script file (no inline script, for a Content-Security-Policy), and an
OpenAPI document that declares the bearer API key, so "Authorize" takes one."""

from __future__ import annotations

import html
from typing import Any, Final

from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

SCHEMA_PATH: Final = "/schema"
BEARER: Final = "bearer"
# vendored under dashboard/static (version and licence in vendor/VENDORED.md)
SWAGGER_UI: Final = "/static/vendor/swagger-ui-5.35.0"
START_UP: Final = "/static/docs.js"

# An operation that needs no key says so with an empty requirement (it overrides the
# document's default).
NO_AUTH: Final[list[dict[str, list[str]]]] = [{}]


class OfflineSwaggerUI(OpenAPIRenderPlugin):
    """Swagger UI from the package's static files."""

    def __init__(self, path: str = "/") -> None:
        super().__init__(path=path)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        spec_url = html.escape(self.get_openapi_json_route(request), quote=True)
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} API</title>
  <link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{spec_url}"></div>
  <script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
  <script src="{START_UP}"></script>
</body>
</html>
""".encode()


def openapi_config(title: str, version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title=title,
        version=version,
        path=SCHEMA_PATH,
        render_plugins=[OfflineSwaggerUI()],
        components=Components(security_schemes={BEARER: SecurityScheme(
            type="http", scheme="bearer", bearer_format="sk_live_...",
            description="An API key (`sluice connections create`, `sluice keys create`): "
                        "`Authorization: Bearer <key>`. The key's connection is the one "
                        "every call reads or writes; its scopes say what it may do.")}),
        security=[{BEARER: []}],
    )
