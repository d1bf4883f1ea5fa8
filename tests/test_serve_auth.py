"""API keys: hashed at rest, scoped, tenant-bound feedback, and no open port without them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tuneloop.config import ServeConfig, load_config
from tuneloop.errors import ConfigError
from tuneloop.serve.auth import KeyRing, key_sha256
from tuneloop.serve.keys import add_key
from tuneloop.serve.server import check_binding
from tuneloop.workspace import Workspace

from support.clirun import run
from support.liveserver import live_server, serve_workspace, wait_for

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("auth")
    base = tiny_base
    ws = serve_workspace(root / "ws", base)
    keys = {
        "bank": add_key(ws.config_path, "bank", ["inference"]),
        "clinic": add_key(ws.config_path, "clinic", ["inference"]),
        "ops": add_key(ws.config_path, "ops", ["inference", "admin"]),
    }
    ws = Workspace(ws.root)
    with live_server(ws, base) as (url, services):
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)
        yield {"url": url, "keys": keys, "ws": ws, "services": services}


def as_(keyed: dict[str, Any], who: str | None) -> openai.OpenAI:
    key = keyed["keys"].get(who, "tl-wrong") if who else "none"
    return openai.OpenAI(base_url=f"{keyed['url']}/v1", api_key=key, max_retries=0)


def test_keys_are_stored_as_hashes_only(keyed: dict[str, Any]) -> None:
    text = keyed["ws"].config_path.read_text()
    for key in keyed["keys"].values():
        assert key not in text and key_sha256(key) in text
    assert load_config(keyed["ws"].config_path).serve.api_keys["ops"].scopes == [
        "inference",
        "admin",
    ]


@pytest.mark.parametrize("who", ["nobody", None])
def test_a_request_without_a_valid_key_is_refused(keyed: dict[str, Any], who: str | None) -> None:
    with pytest.raises(openai.AuthenticationError):
        as_(keyed, who).chat.completions.create(model="base", messages=HELLO, max_tokens=2)
    r = httpx.post(f"{keyed['url']}/v1/chat/completions", json={"messages": HELLO})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"


def test_admin_routes_need_the_admin_scope(keyed: dict[str, Any]) -> None:
    url, keys = keyed["url"], keyed["keys"]
    denied = httpx.get(f"{url}/admin/state", headers={"Authorization": f"Bearer {keys['bank']}"})
    assert denied.status_code == 403 and "admin" in denied.json()["error"]["message"]
    allowed = httpx.get(f"{url}/admin/state", headers={"Authorization": f"Bearer {keys['ops']}"})
    assert allowed.status_code == 200 and "aliases" in allowed.json()


def test_feedback_only_from_the_tenant_that_asked(keyed: dict[str, Any]) -> None:
    url, keys = keyed["url"], keyed["keys"]
    r = as_(keyed, "bank").chat.completions.create(model="base", messages=HELLO, max_tokens=2)
    body = {"response_id": r.id, "thumbs": "up"}
    other = httpx.post(f"{url}/v1/feedback", json=body,
                       headers={"Authorization": f"Bearer {keys['clinic']}"})  # fmt: skip
    assert other.status_code == 404
    own = httpx.post(f"{url}/v1/feedback", json=body,
                     headers={"Authorization": f"Bearer {keys['bank']}"})  # fmt: skip
    assert own.status_code == 200
    keyed["services"].writer.flush()
    assert keyed["services"].log.response(r.id)["tenant"] == "bank"


def test_environment_keys() -> None:
    ring = KeyRing.load({}, {"TUNELOOP_API_KEYS": "app:tl-abc,ops:tl-def:admin"})
    assert ring.authenticate("Bearer tl-abc").scopes == {"inference"}
    assert ring.authenticate("Bearer tl-def").tenant == "ops"
    with pytest.raises(ConfigError, match="NAME:KEY"):
        KeyRing.load({}, {"TUNELOOP_API_KEYS": "broken"})


def test_no_keys_means_loopback_only() -> None:
    cfg = ServeConfig()
    with pytest.raises(ConfigError, match=r"will not listen on 0\.0\.0\.0"):
        check_binding(cfg, "0.0.0.0", keys_enabled=False)
    assert check_binding(cfg, "0.0.0.0", keys_enabled=True) is None
    note = check_binding(cfg, "127.0.0.1", keys_enabled=False)
    assert note is not None and "loopback" not in note and "127.0.0.1 only" in note


def test_a_bad_or_busy_port_is_one_line_before_anything_loads(tmp_path: Path) -> None:
    import socket

    ws = serve_workspace(tmp_path / "ws", tmp_path / "no-model")  # no model: it must not load
    bad = run("serve", "--port", "99999", "-w", ws.root, cwd=tmp_path)
    assert bad.returncode == 2 and "99999" in bad.stderr and "serving" not in bad.stdout
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        busy = run("serve", "--port", port, "-w", ws.root, cwd=tmp_path)
    assert busy.returncode == 2, busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1 and f"127.0.0.1:{port}" in busy.stderr
    assert "serving" not in busy.stdout


def test_cli_refuses_an_open_port_and_creates_keys(tmp_path: Path) -> None:
    ws = serve_workspace(tmp_path / "ws", tmp_path / "no-model")
    done = run("serve", "--host", "0.0.0.0", "-w", ws.root, cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "keys create" in done.stderr
    made = run("keys", "create", "app", "--admin", "-w", ws.root, "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    import json

    key = json.loads(made.stdout)["key"]
    cfg = load_config(ws.config_path).serve
    assert cfg.api_keys["app"].sha256 == key_sha256(key)
    again = run("keys", "create", "app", "-w", ws.root, cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr


def test_pages_metrics_and_the_schema_need_a_key_and_probes_do_not(keyed: dict[str, Any]) -> None:
    url = keyed["url"]
    for path in ("/", "/docs"):
        r = httpx.get(f"{url}{path}")
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"
    assert httpx.get(f"{url}/openapi.json").status_code == 401
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/healthz").status_code == 200  # serve.open_probes, the default
    assert httpx.get(f"{url}/readyz").status_code == 200
    bearer = {"Authorization": f"Bearer {keyed['keys']['ops']}"}
    assert httpx.get(f"{url}/metrics", headers=bearer).status_code == 200
    assert httpx.get(f"{url}/openapi.json", headers=bearer).json()["info"]["title"] == "tuneloop"


def sign_in(url: str, key: str, csrf: str | None = None) -> httpx.Client:
    browser = httpx.Client(base_url=url)
    form = browser.get("/login?next=/docs")
    token = csrf or form.text.split('name="csrf" value="')[1].split('"')[0]
    browser.post("/login", data={"key": key, "csrf": token, "next": "/docs"})
    return browser


def test_a_browser_signs_in_with_a_key_for_a_session(keyed: dict[str, Any]) -> None:
    url, keys = keyed["url"], keyed["keys"]
    browser = sign_in(url, keys["bank"])
    docs = browser.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower() and "http" not in docs.text.split("<body>")[1].lower()
    assert browser.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert browser.get("/").status_code == 403  # the report needs the admin scope
    cookie = browser.cookies["tuneloop_session"]
    assert keys["bank"] not in cookie
    forged = httpx.get(f"{url}/docs", cookies={"tuneloop_session": cookie[:-4] + "0000"})
    assert forged.status_code == 303
    assert sign_in(url, keys["ops"]).get("/").status_code == 200
    refused = sign_in(url, keys["ops"], csrf="not-the-cookies-token")
    assert refused.get("/docs").status_code == 303  # no session: the CSRF check failed
    assert sign_in(url, "tl-wrong").get("/docs").status_code == 303


def test_sessions_expire_and_cannot_be_forged() -> None:
    from tuneloop.serve.auth import Principal
    from tuneloop.serve.pages import SESSION_S, Sessions

    sessions = Sessions(b"k" * 32)
    token = sessions.issue(Principal("bank", frozenset({"inference"})), now=1000.0)
    assert sessions.read(token, now=1000.0 + SESSION_S - 1) == Principal(
        "bank", frozenset({"inference"})
    )
    assert sessions.read(token, now=1000.0 + SESSION_S + 1) is None
    assert Sessions(b"x" * 32).read(token, now=1000.0) is None  # another server's secret


def test_the_report_is_rendered_once_per_change(keyed: dict[str, Any]) -> None:
    url, ws = keyed["url"], keyed["ws"]
    bearer = {"Authorization": f"Bearer {keyed['keys']['ops']}"}
    cache = keyed["services"].report_cache
    before = cache.renders
    pages = [httpx.get(f"{url}/", headers=bearer) for _ in range(20)]
    assert {p.status_code for p in pages} == {200} and len({p.text for p in pages}) == 1
    assert cache.renders - before <= 1  # one render for twenty pages (none if still cached)
    renders = cache.renders
    as_(keyed, "bank").chat.completions.create(model="base", messages=HELLO, max_tokens=2)
    keyed["services"].writer.flush()  # the serving log changed: not a change of the report
    httpx.get(f"{url}/", headers=bearer)
    assert cache.renders == renders
    with (ws.root / "registry-audit.jsonl").open("a") as fh:
        fh.write('{"action": "note"}\n')
    httpx.get(f"{url}/", headers=bearer)
    assert cache.renders == renders + 1
