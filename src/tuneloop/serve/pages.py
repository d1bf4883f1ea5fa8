"""The pages a person opens in a browser: the report at ``/``, the API docs, and their login.

A browser cannot send a bearer key, so when keys are on a person exchanges one at ``/login``
for a session cookie: signed (HMAC-SHA256 over the tenant, scopes and expiry, with
``$TUNELOOP_SESSION_SECRET`` or a secret made at start-up), ``HttpOnly`` and
``SameSite=Strict`` (so no other site's page can make a browser send it). The login form
carries a CSRF token checked against a cookie of its own (the double-submit pattern). The
report needs the admin scope (it shows every tenant's traffic in aggregate); the docs need any
key; API clients may send their bearer key to either. The docs' JavaScript and CSS are served
from the ``fastapi-offline`` wheel: FastAPI's default pulls them from a CDN, which an
air-gapped site cannot reach.

The report is rendered once per change of the workspace (or once a minute at most, for what
changes on a server without touching a file), off the event loop, one render at a time:
twenty GETs of a 4.9 MB page used to render it twenty times and stall token streams for ~11 s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tuneloop.serve.auth import Principal
from tuneloop.serve.errors import APIError
from tuneloop.serve.services import Services
from tuneloop.workspace import SERVED_ADAPTERS, SERVING_LOG, TRAIN, Workspace

SESSION, CSRF = "tuneloop_session", "tuneloop_csrf"
SESSION_S = 8 * 3600
SECRET_ENV = "TUNELOOP_SESSION_SECRET"
REPORT_MAX_AGE_S = 60.0


class Sessions:
    """Signed session tokens: what a browser holds instead of a key."""

    def __init__(self, secret: bytes | None = None) -> None:
        configured = os.environ.get(SECRET_ENV)
        self._secret = secret or (configured.encode() if configured else secrets.token_bytes(32))

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()

    def issue(self, who: Principal, now: float | None = None) -> str:
        body = {
            "t": who.tenant,
            "s": sorted(who.scopes),
            "e": int((now or time.time()) + SESSION_S),
        }
        payload = base64.urlsafe_b64encode(json.dumps(body).encode())
        return f"{payload.decode()}.{self._mac(payload)}"

    def read(self, token: str | None, now: float | None = None) -> Principal | None:
        payload, _, mac = (token or "").partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload.encode()))
        except ValueError:
            return None
        if body.get("e", 0) < (now or time.time()):
            return None
        return Principal(str(body["t"]), frozenset(body["s"]))


def page_principal(s: Services, sessions: Sessions, request: Request) -> Principal | None:
    """Who opens a page: a bearer key, a session cookie, or (keys off) the local admin."""
    if not s.keys.enabled or request.headers.get("authorization"):
        try:
            return s.keys.authenticate(request.headers.get("authorization"))
        except APIError:
            return None
    return sessions.read(request.cookies.get(SESSION))


class ReportCache:
    """The report page, rendered again only when the workspace changed (or it is old)."""

    def __init__(self, ws: Workspace, render: Callable[[Workspace], str]) -> None:
        self.ws, self._render = ws, render
        self._page: tuple[tuple[Any, ...], float, bytes] | None = None
        self._lock = threading.Lock()
        self.renders = 0

    def signature(self) -> tuple[Any, ...]:
        """Sizes and times of what the report reads: one stat per file, no file opened. The
        root's listing reaches one level down (erasures/, serve/ …); the folders named here
        hold what lies deeper (a cycle's files, a run's metrics, reports, dataset manifests)."""
        ws = self.ws
        deeper = [ws.cycles_dir, ws.runs_dir, ws.eval_reports_dir, ws.datasets_dir]
        paths = sorted({p for folder in (ws.root, *deeper) for p in _listing(folder)})
        stats = [(str(p), p.stat()) for p in paths]
        return tuple((name, st.st_mtime_ns, st.st_size) for name, st in stats)

    def page(self) -> bytes:
        with self._lock:  # one render at a time; the others wait for it and share it
            sig = self.signature()
            fresh = self._page and self._page[0] == sig
            if (
                self._page is None
                or not fresh
                or time.monotonic() - self._page[1] > REPORT_MAX_AGE_S
            ):
                self._page = (sig, time.monotonic(), self._render(self.ws).encode("utf-8"))
                self.renders += 1
            return self._page[2]


def _listing(folder: Path) -> list[Path]:
    """A folder's files and its subfolders' files (one level), sorted; none if it is absent.

    The serving log is left out: it changes with every request, and what the report shows of
    it (a canary's numbers) changes with each judgment, which the audit log records anyway. So
    is the training side, but for its dataset versions (listed on their own)."""
    if folder.is_dir():
        found = [p for p in sorted(folder.iterdir()) if p.name not in (SERVED_ADAPTERS, TRAIN)]
        nested = [sorted(p.iterdir()) for p in found if p.is_dir()]
        files = [p for p in found + [q for n in nested for q in n] if p.is_file()]
        return [p for p in files if not p.name.startswith(SERVING_LOG) and p.suffix != ".lock"]
    return []


def _login_page(csrf: str, next_url: str, error: str = "") -> str:
    note = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>tuneloop: sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto}}
input{{width:100%;padding:.5rem;margin:.5rem 0}}.error{{color:#e63946}}</style></head><body>
<h1>tuneloop</h1><p>Paste an API key to open the report and the API docs.</p>{note}
<form method="post" action="/login"><input type="password" name="key" autocomplete="off"
 placeholder="tl-…" required><input type="hidden" name="csrf" value="{html.escape(csrf)}">
<input type="hidden" name="next" value="{html.escape(next_url)}">
<button type="submit">Sign in</button></form></body></html>"""


def _safe_next(value: str) -> str:
    """Only a path on this server: never an open redirect to another site."""
    return value if value.startswith("/") and not value.startswith("//") else "/"


def _login_form(request: Request, error: str = "", status: int = 200) -> HTMLResponse:
    csrf = secrets.token_urlsafe(24)
    next_url = _safe_next(request.query_params.get("next", "/"))
    response = HTMLResponse(_login_page(csrf, next_url, error), status_code=status)
    response.set_cookie(CSRF, csrf, httponly=True, samesite="strict", path="/login")
    return response


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(raw).items()}


def add_pages(app: FastAPI, s: Services, render: Callable[[Workspace], str]) -> None:
    sessions = Sessions()
    cache = ReportCache(s.workspace, render)
    s.report_cache = cache
    static = Path(str(fastapi_offline.__file__)).parent / "static"
    app.mount("/docs-assets", StaticFiles(directory=static), name="docs-assets")

    def need(request: Request, scope: str) -> Principal | Response:
        who = page_principal(s, sessions, request)
        if who is None:
            target = quote(request.url.path)
            return RedirectResponse(f"/login?next={target}", status_code=303)
        if scope not in who.scopes:
            raise APIError(403, f"this key ({who.tenant}) lacks the '{scope}' scope; use an "
                           f"{scope} key", "insufficient_scope")  # fmt: skip
        return who

    @app.get("/", summary="The loop's report (HTML)", response_class=HTMLResponse)
    async def report_page(request: Request) -> Response:
        if isinstance(who := need(request, "admin"), Response):
            return who
        return HTMLResponse(await run_in_threadpool(cache.page))

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Response:
        if isinstance(who := need(request, "inference"), Response):
            return who
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="tuneloop API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )  # fmt: skip

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> Response:
        if page_principal(s, sessions, request) is None:
            raise APIError(401, "send an API key (Authorization: Bearer …) or sign in at /login",
                           "missing_api_key", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        return JSONResponse(app.openapi())

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        return _login_form(request)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        sent, kept = form.get("csrf", ""), request.cookies.get(CSRF, "")
        if not sent or not hmac.compare_digest(sent, kept):
            return _login_form(request, "the form expired; sign in again", 403)
        try:
            who = s.keys.authenticate(f"Bearer {form.get('key', '')}")
        except APIError:
            return _login_form(request, "that key is not valid", 401)
        response = RedirectResponse(_safe_next(form.get("next", "/")), status_code=303)
        response.set_cookie(SESSION, sessions.issue(who), max_age=SESSION_S, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
        response.delete_cookie(CSRF, path="/login")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION)
        return response
