"""The API's reference pages, ``/docs`` (Swagger UI) and ``/redoc``, without a CDN.

FastAPI's own pages load swagger-ui and redoc from a CDN, unpinned, onto the origin of the
admin page (whose cookie signs an admin in): whatever that CDN serves would run there.
Here their scripts come from an installed package instead (``fastapi-offline`` ships both,
pinned with it), under ``/docs-static/``, and each page has a strict Content-Security-Policy:
its own origin only, its one inline script allowed by hash. Redoc styles itself with
``<style>`` elements made at run time, which no hash can name (with ``style-src 'self'`` it
shows nothing): on ``/redoc`` alone styles may be inline (styles run no code).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Where the pages' scripts, stylesheet and icon are served from.
STATIC = "/docs-static"
#: The package (and its folder) the assets come from.
ASSETS = ("fastapi_offline", "static")
#: The pages' headers besides their CSP; ``csp`` adds the policy.
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def csp(html: str, inline_styles: bool = False) -> str:
    """The policy of a page: its own origin only, and each inline script of ``html`` by
    its SHA-256 (the scripts are fixed when the app is made: the hash is computed, not
    kept by hand); inline styles too with ``inline_styles``."""
    scripts = " ".join(
        ["'self'"]
        + [
            "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
            for script in _INLINE_SCRIPT.findall(html)
        ]
    )
    styles = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    return (
        f"default-src 'self'; script-src {scripts}; style-src {styles}; img-src 'self' data:; "
        "worker-src 'self' blob:; "
        "connect-src 'self'; object-src 'none'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` for ``app`` (made with ``docs_url=None`` and
    ``redoc_url=None``) and their assets under ``STATIC``."""
    app.mount(STATIC, StaticFiles(packages=[ASSETS]), name="docs-static")
    assert app.openapi_url is not None
    # Each page, and whether it needs inline styles.
    pages = {
        "/docs": (
            get_swagger_ui_html(
                openapi_url=app.openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
                swagger_css_url=f"{STATIC}/swagger-ui.css",
                swagger_favicon_url=f"{STATIC}/favicon.png",
                swagger_ui_parameters=app.swagger_ui_parameters,
            ),
            False,
        ),
        "/redoc": (
            get_redoc_html(
                openapi_url=app.openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{STATIC}/redoc.standalone.js",
                redoc_favicon_url=f"{STATIC}/favicon.png",
                with_google_fonts=False,
            ),
            True,
        ),
    }
    for path, (made, inline_styles) in pages.items():
        html = bytes(made.body).decode()
        headers = {**HEADERS, "Content-Security-Policy": csp(html, inline_styles)}
        app.add_api_route(path, _page(html, headers), methods=["GET"], include_in_schema=False)


def _page(html: str, headers: dict[str, str]) -> Callable[[], Awaitable[HTMLResponse]]:
    """The route of one fixed page."""

    async def page() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    return page
