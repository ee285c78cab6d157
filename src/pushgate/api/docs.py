"""`/api/docs`: the interactive API documentation (Swagger UI), with a strict policy.

The page loads Swagger UI's script and stylesheet from a CDN (moving them into the package is a
later change) and starts it with one inline script. Its Content-Security-Policy allows exactly
that: those two URLs, the inline script by its SHA-256 digest (no other inline script runs),
requests back to this origin only (the OpenAPI document and "Try it out"), no plugins, no
framing, no base URL or form target elsewhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from pushgate.web.templating import PAGE_HEADERS

router = APIRouter(include_in_schema=False)

OPENAPI_URL = "/api/openapi.json"
SWAGGER_JS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
FAVICON = "/static/favicon.svg"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


@functools.cache
def docs_page() -> tuple[bytes, dict[str, str]]:
    """The page and its headers, built once: the policy names the digest of its inline script."""
    body = get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title="pushgate API",
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url=FAVICON,
    ).body
    digests = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(bytes(body).decode())
    )
    policy = (
        f"default-src 'none'; script-src {SWAGGER_JS} {digests}; style-src {SWAGGER_CSS}; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'none'"
    )
    return bytes(body), {**PAGE_HEADERS, "Content-Security-Policy": policy}


@router.get("/api/docs")
async def api_docs() -> HTMLResponse:
    """Swagger UI over pushgate's OpenAPI document."""
    body, headers = docs_page()
    return HTMLResponse(body, headers=headers)
