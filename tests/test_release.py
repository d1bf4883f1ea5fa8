"""One release check: what the gate refused, never saw, or was trained on erased data does not
reach users — through the CLI, the admin API, the canary, the follower or a request naming it —
unless someone forces it with a reason, which the audit log keeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tuneloop.flows.register import registry_for
from tuneloop.model.base import weights_sha256
from tuneloop.registry import Lineage, ModelVersion
from tuneloop.registry.core import os_actor
from tuneloop.registry.release import eligibility
from tuneloop.serve.keys import add_key
from tuneloop.state.canary import read_state
from tuneloop.workspace import Workspace

from support.clirun import run
from support.liveserver import (
    live_server,
    register_adapter,
    serve_workspace,
    tiny_adapter,
    wait_for,
)

HELLO = [{"role": "user", "content": "please reset my password"}]


def version(gate: str | None, on: str | None = "idx1", tainted: bool = False,
            waived: tuple[str, ...] = ()) -> ModelVersion:  # fmt: skip
    decision = (
        None
        if gate is None
        else json.dumps({"decision": gate, "reasons": ["why"], "eval_index_version": on or ""})
    )
    lineage = Lineage("b", "", "0" * 64, "ds", "", {}, "c", gate_decision=decision)
    return ModelVersion(
        "3", lineage, "a" * 64, [], datetime.now(UTC), "run", "src",
        tainted={"request_id": "erase-1"} if tainted else None,
        waiver={"codes": list(waived)} if waived else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("mv", "fresh", "blocked_by"),
    [
        (version("pass"), True, []),
        (version(None), False, ["ungated"]),
        (version("fail"), False, ["gate_refused"]),
        (version("inconclusive"), False, ["gate_inconclusive"]),  # the release waits
        (version("pass", on="idx0"), True, ["gate_stale"]),
        (version("pass", on="idx0"), False, []),  # a way back, or still serving: not a release
        (version("pass", on=None), True, ["gate_stale"]),  # gated before the index was recorded
        (version("pass", tainted=True), False, ["tainted"]),
        (version(None, tainted=True), True, ["ungated", "tainted"]),
        (version(None, waived=("ungated",)), True, []),
        (version(None, tainted=True, waived=("ungated",)), True, ["tainted"]),  # taint came later
    ],
)
def test_eligibility(mv: ModelVersion, fresh: bool, blocked_by: list[str]) -> None:
    found = eligibility(mv, "idx1", fresh)
    assert [p.code for p in found.problems] == blocked_by
    assert found.ok == (not blocked_by)
    assert all(f"v{mv.version}" in p.detail for p in found.problems)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tiny_talker: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("release")
    base = tiny_talker
    adapters = [tiny_adapter(base, root / f"a{i}", seed=i) for i in range(4)]
    return {"base": base, "sha": weights_sha256(base), "adapters": adapters}


def workspace(tmp_path: Path, tiny: dict[str, Any]) -> tuple[Workspace, list[str]]:
    """v1 and v2 passed the gate, v3 never went through it, the gate refused v4."""
    ws = serve_workspace(tmp_path / "ws", tiny["base"])
    versions = [register_adapter(ws, a, tiny["sha"], str(tiny["base"]), gated=i < 2).version
                for i, a in enumerate(tiny["adapters"])]  # fmt: skip
    registry_for(ws).set_gate_decision(versions[3], {"decision": "fail", "reasons": ["worse"]})
    return ws, versions


def test_the_cli_refuses_what_may_not_serve_unless_forced(
    tmp_path: Path, tiny: dict[str, Any]
) -> None:
    ws, (v1, v2, v3, v4) = workspace(tmp_path, tiny)
    assert run("registry", "promote", v1, cwd=ws.root).returncode == 0
    refused = run("registry", "promote", v3, cwd=ws.root)
    assert refused.returncode == 2
    assert f"v{v3} has not been through the gate" in refused.stderr and "--force" in refused.stderr
    canary = run("canary", "start", v4, cwd=ws.root)
    assert canary.returncode == 2 and f"the gate refused v{v4} (worse)" in canary.stderr
    forced = run("registry", "promote", v3, "--force", "incident 4711: hotfix", cwd=ws.root)
    assert forced.returncode == 0, forced.stderr
    registry = registry_for(ws)
    event = next(e for e in registry.audit() if e["action"] == "release_forced")
    assert event["reason"] == "incident 4711: hotfix" and event["user"] == os_actor()
    assert event["codes"] == ["ungated"] and registry.get(v3).waiver is not None
    listed = run("registry", "list", cwd=ws.root).stdout
    assert f"v{v3}  [production]" in listed and f"v{v1}  [previous]" in listed
    assert f"v{v4}  [-]" in listed and "PROBLEM: the gate refused" in listed
    assert registry.aliases()["production"] == v3 and v2


def test_rollback_is_not_a_toggle(tmp_path: Path, tiny: dict[str, Any]) -> None:
    ws, (v1, v2, _, _) = workspace(tmp_path, tiny)
    for v in (v1, v2):
        assert run("registry", "promote", v, cwd=ws.root).returncode == 0
    assert run("registry", "rollback", "--expect", v2, cwd=ws.root).returncode == 0
    again = run("registry", "rollback", "--expect", v2, cwd=ws.root)  # a retry
    assert again.returncode == 2 and f"production is v{v1}, not v{v2}" in again.stderr
    assert run("registry", "rollback", cwd=ws.root).returncode == 2  # previous was cleared
    assert registry_for(ws).aliases() == {"production": v1}
    assert run("registry", "rollback", "--to", v2, cwd=ws.root).returncode == 0
    assert registry_for(ws).aliases() == {"production": v2}


@pytest.fixture
def served(tmp_path: Path, tiny: dict[str, Any]) -> Iterator[dict[str, Any]]:
    ws, versions = workspace(tmp_path, tiny)
    keys = {"ops": add_key(ws.config_path, "ops", ["inference", "admin"]),
            "bank": add_key(ws.config_path, "bank", ["inference"])}  # fmt: skip
    ws = Workspace(ws.root)
    registry_for(ws).promote(versions[0])
    with live_server(ws, tiny["base"]) as (url, services):
        wait_for(lambda: httpx.get(f"{url}/readyz").json().get("production") == f"v{versions[0]}")
        yield {"url": url, "ws": ws, "versions": versions, "keys": keys, "services": services}


def admin(served: dict[str, Any], path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {served['keys']['ops']}"}
    return httpx.post(f"{served['url']}{path}", json=body, headers=headers, timeout=60)


def test_admin_routes_refuse_ineligible_versions_and_audit_the_key(
    served: dict[str, Any],
) -> None:
    _, v2, v3, v4 = served["versions"]
    for path, body in [("/admin/promote", {"version": v3}), ("/admin/canary", {"version": v4}),
                       ("/admin/adapters", {"version": v4})]:  # fmt: skip
        r = admin(served, path, body)
        assert r.status_code == 409 and r.json()["error"]["code"] == "release_refused", r.text
        assert f"v{body['version']}" in r.json()["error"]["message"]
    r = admin(served, "/admin/promote", {"version": v3, "force": "approved by the risk desk"})
    assert r.status_code == 200 and r.json()["serving"]["production"] == f"v{v3}"
    assert admin(served, "/admin/promote", {"version": v2}).status_code == 200
    assert admin(served, "/admin/rollback", {"expected_production": v2}).status_code == 200
    moved = admin(served, "/admin/rollback", {"expected_production": v2})  # retried
    assert moved.status_code == 409 and moved.json()["error"]["code"] == "production_moved"
    assert admin(served, "/admin/promote", {"version": "77"}).status_code == 404
    events = registry_for(served["ws"]).audit()
    forced = next(e for e in events if e["action"] == "release_forced")
    assert forced["user"] == "key:ops" and forced["reason"] == "approved by the risk desk"
    assert {e["user"] for e in events if e["action"] in ("promote", "rollback")} >= {"key:ops"}
    assert served["keys"]["ops"] not in json.dumps(events)


def test_a_tainted_version_is_a_problem_and_cannot_be_named_or_canaried(
    served: dict[str, Any],
) -> None:
    url = served["url"]
    v1, v2, *_ = served["versions"]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=served["keys"]["bank"], max_retries=0)
    assert admin(served, "/admin/canary", {"version": v2, "weight": 50}).status_code == 200
    wait_for(lambda: httpx.get(f"{url}/readyz").json() and served["services"].router.state.canary)
    registry = registry_for(served["ws"])
    registry.set_tainted(v2, {"request_id": "erase-42", "at": "now"})
    state = wait_for(lambda: (s := read_state(served["ws"].serve_dir)) and not s.running and s)
    assert "erase-42" in (state.ended_reason or "")  # the follower stopped it
    registry.set_tainted(v1, {"request_id": "erase-43", "at": "now"})
    ready = wait_for(lambda: (r := httpx.get(f"{url}/readyz")).json()["problems"] and r)
    assert ready.status_code == 200 and ready.json()["ready"]  # one bad version: still in the LB
    assert "production: v1 may not serve" in ready.json()["problems"][0]
    assert "erase-43" in ready.json()["problems"][0]
    headers = {"Authorization": f"Bearer {served['keys']['ops']}"}
    state = httpx.get(f"{url}/admin/state", headers=headers).json()
    assert any("erase-43" in p for p in state["problems"])
    with pytest.raises(openai.PermissionDeniedError, match="erase-43"):
        client.chat.completions.create(model=f"v{v1}", messages=HELLO, max_tokens=4)
    assert admin(served, "/admin/canary", {"version": v2}).status_code == 409
    answer = client.chat.completions.create(model="production", messages=HELLO, max_tokens=4)
    assert answer.model == f"v{v1}"  # production is still served


def test_the_base_models_name_and_previous_route_where_they_say(served: dict[str, Any]) -> None:
    url, (v1, v2, *_) = served["url"], served["versions"]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=served["keys"]["bank"], max_retries=0)
    assert admin(served, "/admin/promote", {"version": v2}).status_code == 200
    base_name = served["ws"].config.train.base
    raw = client.chat.completions.with_raw_response.create(
        model=base_name, messages=HELLO, max_tokens=4
    )
    assert raw.parse().model == "base" and raw.headers["x-tuneloop-arm"] == "base"
    assert (
        client.chat.completions.create(model="previous", messages=HELLO, max_tokens=4).model
        == f"v{v1}"
    )
