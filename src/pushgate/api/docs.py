"""`/api/docs`: the interactive API documentation (Swagger UI), offline, under a strict policy.

Swagger UI's script and stylesheet come from the installed `fastapi-offline` package (a PyPI
package that ships Swagger UI's release files; nothing is copied into this repository and
nothing is fetched from a CDN), served here under `/api/docs/`. The page starts Swagger UI with
one small script of pushgate's own (`web/static/api-docs.js`), so it has no inline script at
all. Its Content-Security-Policy allows exactly what it loads: scripts and the stylesheet from
this origin, Swagger UI's `data:` images, requests to this origin only (the OpenAPI document
and "Try it out"), no plugins, no framing, no base URL or form target elsewhere.

`/api/redoc` is not served: Swagger UI reads the same document, and ReDoc would need inline
styles and `blob:` workers that this policy refuses.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from pushgate.errors import NotFound
from pushgate.web.templating import PAGE_HEADERS

router = APIRouter(include_in_schema=False)

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
# The files of the Swagger UI release that the page uses, by the name it asks for them.
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
STARTER = "/static/api-docs.js"
FAVICON = "/static/favicon.svg"
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'"
)
# The assets change only with the package: browsers may keep them for a day.
ASSET_CACHE = "public, max-age=86400"
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pushgate API</title>
<link rel="icon" href="{FAVICON}">
<link rel="stylesheet" href="{DOCS_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{OPENAPI_URL}"></div>
<script src="{DOCS_URL}/swagger-ui-bundle.js"></script>
<script src="{STARTER}"></script>
</body>
</html>
"""


@functools.cache
def assets_dir() -> Path:
    """Where the installed package keeps Swagger UI's release files."""
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


def docs_page() -> tuple[bytes, dict[str, str]]:
    """The page and its headers: the policy, and the UI's other page headers."""
    return PAGE.encode(), {**PAGE_HEADERS, "Content-Security-Policy": POLICY}


@router.get(DOCS_URL)
async def api_docs() -> HTMLResponse:
    """Swagger UI over pushgate's OpenAPI document."""
    body, headers = docs_page()
    return HTMLResponse(body, headers=headers)


@router.get(DOCS_URL + "/{name}")
async def api_docs_asset(name: str) -> FileResponse:
    """One of Swagger UI's files (only those the page uses)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(
        assets_dir() / name, media_type=media_type, headers={"Cache-Control": ASSET_CACHE}
    )
