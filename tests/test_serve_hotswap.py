"""Hot swap: the server follows alias moves without a restart, and refuses tampered adapters."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tuneloop.flows.register import registry_for
from tuneloop.model.base import weights_sha256
from tuneloop.serve.services import Services

from support.liveserver import (
    live_server,
    register_adapter,
    serve_workspace,
    tiny_adapter,
    wait_for,
)

HELLO = [{"role": "user", "content": "please reset my password"}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_talker: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("swap")
    base = tiny_talker
    ws = serve_workspace(root / "ws", base)
    sha = weights_sha256(base)
    versions = [register_adapter(ws, tiny_adapter(base, root / f"a{i}", seed=i), sha, str(base))
                for i in (1, 2, 3, 4)]  # fmt: skip
    # v3's files are changed in the artifact store before the server ever fetches them (v4, the
    # newest, is the one a server loads ahead of any promotion)
    source = Path(versions[2].source.removeprefix("file://")) / "adapter_model.safetensors"
    data = bytearray(source.read_bytes())
    data[-1] ^= 0xFF
    source.write_bytes(bytes(data))
    with live_server(ws, base) as (url, services):
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)
        yield {"url": url, "services": services, "ws": ws, "base": base,
               "versions": [v.version for v in versions], "root": root}  # fmt: skip


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)


def production_is(url: str, model_id: str) -> bool:
    return bool(httpx.get(f"{url}/readyz").json()["production"] == model_id)


def answer(url: str, model: str = "production") -> Any:
    return client(url).chat.completions.create(
        model=model, messages=HELLO, max_tokens=6, temperature=0
    )


def test_promotion_is_followed_and_in_flight_requests_finish_on_their_version(
    setup: dict[str, Any],
) -> None:
    url, ws = setup["url"], setup["ws"]
    v1, v2 = setup["versions"][:2]
    registry = registry_for(ws)  # another process's view, as `tuneloop registry promote` has
    registry.promote(v1)
    wait_for(lambda: production_is(url, f"v{v1}"))
    first = answer(url)
    assert (
        first.model == f"v{v1}"
        and first.choices[0].message.content != answer(url, "base").choices[0].message.content
    )

    seen: list[tuple[set[str], str | None]] = []

    def stream() -> None:
        models, finish = set(), None
        for chunk in client(url).chat.completions.create(
            model="production", messages=HELLO, max_tokens=80, temperature=0, stream=True
        ):
            models.add(chunk.model)
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        seen.append((models, finish))

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for t in threads:
        t.start()
    services: Services = setup["services"]
    wait_for(lambda: services.backend.stats().running >= 1)
    registry.promote(v2)
    wait_for(lambda: production_is(url, f"v{v2}"))
    after = answer(url)
    for t in threads:
        t.join()
    assert after.model == f"v{v2}"
    assert all(models == {f"v{v1}"} and finish in ("stop", "length") for models, finish in seen)
    models = {m.id for m in client(url).models.list()}
    assert {f"v{v1}", f"v{v2}"} <= models  # previous stays loaded: rollback is instant
    registry.rollback()
    wait_for(lambda: production_is(url, f"v{v1}"))
    assert answer(url).choices[0].message.content == first.choices[0].message.content


def test_a_tampered_adapter_is_refused_and_serving_goes_on(setup: dict[str, Any]) -> None:
    url, ws = setup["url"], setup["ws"]
    v1, v3 = setup["versions"][0], setup["versions"][2]
    registry = registry_for(ws)
    registry.promote(v1)  # what serves before, and where the rollback below returns
    wait_for(lambda: production_is(url, f"v{v1}"))
    before = f"v{v1}"
    registry.promote(v3)
    ready = wait_for(lambda: (r := httpx.get(f"{url}/readyz").json())["problems"] and r)
    assert ready["production"] == before and f"v{v3} refused" in ready["problems"][0]
    assert "sha256" in ready["problems"][0]
    assert answer(url).model == before
    metrics = httpx.get(f"{url}/metrics").text
    assert f'tuneloop_adapter_refused_total{{version="v{v3}"}} 1.0' in metrics
    assert any(e["action"] == "adapter_refused" and e["version"] == v3 for e in registry.audit())
    registry.rollback()
    wait_for(lambda: not httpx.get(f"{url}/readyz").json()["problems"])


def test_the_newest_version_is_loaded_ahead_but_not_served_by_name(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    url, services, ws, base = setup["url"], setup["services"], setup["ws"], setup["base"]
    adapter = tiny_adapter(base, tmp_path / "newest", seed=5)
    newest = register_adapter(ws, adapter, weights_sha256(base), str(base)).version
    assert services.follower is not None
    wait_for(lambda: newest in services.follower._loaded)
    with pytest.raises(openai.NotFoundError):
        answer(url, f"v{newest}")
    assert f"v{newest}" not in {m.id for m in client(url).models.list()}


def test_an_adapter_of_another_base_is_refused(setup: dict[str, Any], tmp_path: Path) -> None:
    url, ws, base = setup["url"], setup["ws"], setup["base"]
    other = register_adapter(ws, tiny_adapter(base, tmp_path / "x", seed=9), "0" * 64, "other")
    r = httpx.post(f"{url}/admin/adapters", json={"version": other.version})
    assert r.status_code == 409 and "trained on base weights" in r.json()["error"]["message"]


def test_an_admin_loads_a_version_to_serve_it_by_name(setup: dict[str, Any]) -> None:
    url = setup["url"]
    v2 = setup["versions"][1]
    r = httpx.post(f"{url}/admin/adapters", json={"version": f"v{v2}"})
    assert r.status_code == 200, r.text
    assert answer(url, f"v{v2}").model == f"v{v2}"
    assert f"v{v2}" in r.json()["serving"]["loaded"]


def test_admin_promote_and_rollback_answer_with_what_is_served(setup: dict[str, Any]) -> None:
    url = setup["url"]
    v1, v2 = setup["versions"][:2]
    first = httpx.post(f"{url}/admin/promote", json={"version": v1}, timeout=60).json()
    assert first["serving"]["production"] == f"v{v1}"  # then v2 has a previous to roll back to
    moved = httpx.post(f"{url}/admin/promote", json={"version": v2}, timeout=60).json()
    assert moved["serving"]["production"] == f"v{v2}" and moved["aliases"]["production"] == v2
    back = httpx.post(f"{url}/admin/rollback", timeout=60).json()
    assert back["serving"]["production"] == f"v{v1}" and back["aliases"]["production"] == v1
    assert httpx.post(f"{url}/admin/promote", json={"version": "77"}).status_code == 404
