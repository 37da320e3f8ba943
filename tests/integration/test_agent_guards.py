"""The agent's guards on the real embedded parts (Tansu, a Faust worker, the
agent process, chDB): a catalog that reaches outside the repository, and a
command replayed to a restarted agent."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers.lab import Lab
from tests.integration import tinyrepo
from tests.integration.conftest import clean_settings, wait_until
from tests.integration.tinyrepo import commit, make_repo
from ttfb import events as ev
from ttfb.emitter import Emitter
from ttfb.signing import sign
from ttfb.store import Store, open_store, queries

pytestmark = pytest.mark.integration

CATALOG = tinyrepo.CATALOG + '''
[[scenario]]
name = "escape"
repo = "tiny"
script = "outside.py"

[[scenario]]
name = "stdlib"
repo = "tiny"
entry = "subprocess:run"
'''


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("guards")
    repo = root / "repo"
    make_repo(repo, import_s=0.05, commits=1)
    outside = root / "outside.py"
    outside.write_text("open('ESCAPED', 'w').write('x')\n")
    os.symlink(outside, repo / "outside.py")  # committed as a link out of the checkout
    commit(repo, "a script that is a link")
    (root / "catalog.toml").write_text(CATALOG)
    settings = clean_settings(root / "data", repos={"tiny": str(repo)},
                              catalog=root / "catalog.toml")
    lab = Lab(settings, headless=True).start()
    try:
        yield lab
    finally:
        lab.stop()


def _send(lab: Lab, *commands: ev.Event, raw: bytes = b"") -> None:
    async def go() -> None:
        emitter = await Emitter(lab.settings, "test-guards").start()
        for command in commands:
            await emitter.emit(command, "commands")
        if raw:
            await emitter.send_raw(lab.settings.topic("commands"), b"tiny", raw)
        await emitter.stop()

    asyncio.run(go())


def _store(lab: Lab) -> Store:
    return open_store(lab.settings)


def test_a_catalog_reaching_outside_the_repository_runs_nothing(guarded: Lab) -> None:
    key = guarded.settings.signing_key.get_secret_value()
    asks = [sign(ev.RunRequested(scenario=s, repo="tiny", commit="HEAD"), key)
            for s in ("escape", "stdlib")]
    _send(guarded, *asks)
    store = _store(guarded)
    rows = wait_until(lambda: (r := store.query(
        "SELECT scenario, status, reason FROM ttfb.runs FINAL WHERE request_id IN"
        " {ids:Array(String)}", {"ids": [a.request_id for a in asks]})) and len(r) == 2 and r,
        timeout=120)
    reasons = {r["scenario"]: r["reason"] for r in rows}
    assert all(r["status"] == "failed" for r in rows)
    assert "scenario 'escape': field 'script'" in reasons["escape"]
    assert "outside the repository" in reasons["escape"]
    assert "scenario 'stdlib': field 'entry'" in reasons["stdlib"]
    assert "names no module of the repository" in reasons["stdlib"]
    assert not list(Path(guarded.settings.data_dir).parent.rglob("ESCAPED"))


def test_a_command_replayed_to_a_restarted_agent_is_refused(guarded: Lab) -> None:
    key = guarded.settings.signing_key.get_secret_value()
    command = sign(ev.RunRequested(scenario="tiny", repo="tiny", commit="HEAD"), key)
    _send(guarded, command)
    store = _store(guarded)
    wait_until(lambda: queries.runs_for_requests(store, [command.request_id]), timeout=120)
    guarded.restart("agent")
    _send(guarded, raw=ev.encode(command))  # the same bytes, to the new agent process
    letter = wait_until(lambda: [r for r in queries.dead_letters(store)
                                 if r["reason"] == f"replayed command {command.event_id}"],
                        timeout=120)
    assert letter and letter[0]["refused_command"]
    assert len(queries.runs_for_requests(store, [command.request_id])) == 1
