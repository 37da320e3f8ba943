"""A bisect's explanation, from real profiled runs made by the agent: its
first entry is what the culprit commit changed. (The demo repository's
injected changes are measured the same way by ``bench/demo_attribution.py``.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

from agents.agent import Agent, AgentConfig
from agents.catalog import Catalog, Scenario
from agents.workspace import Workspaces
from streams.bisect import Bisect
from streams.bisect.state import record
from streams.bisect.verdict import explain
from ttfb import events as ev
from ttfb.signing import Verifier

SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "scripts"


def _commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    for args in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm",
                                 message]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def _explained(agent: Agent, repo: str, scenario: str, component: str, parent: str,
               culprit: str, direction: str = "regression") -> list[dict[str, object]]:
    """A profiled run of each side, as a bisect's explain phase asks for
    them (one request a run), folded into a bisect that named ``culprit``
    (the least-over-runs rule of two a side is the unit tests')."""
    b = Bisect(bisect_id="b", detection_id="d", scenario=scenario, component=component,
               repo=repo, branch="main", good=parent, bad=culprit, direction=direction,
               commits=[parent, culprit], culprits=[1])
    for commit in (parent, culprit):
        request = ev.RunRequested(scenario=scenario, repo=repo, commit=commit, runs=1,
                                  purpose="explain", profile=True, correlation_id="b")
        events = agent.execute(request)
        assert all(isinstance(e, ev.RunCompleted | ev.ComponentMeasured) for e in events), events
        for e in events:
            if isinstance(e, ev.RunCompleted):
                record(b, e)
    return explain(b, parent, culprit)


def test_an_eager_import_in_a_script_scenario_is_explained_by_its_module(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    train = "import helpers  # noqa\n" + (SCRIPTS / "regression_loop.py").read_text()
    parent = _commit(repo, {"train.py": train, "helpers.py": "SCALE = 1.0\n"}, "start")
    culprit = _commit(repo, {"helpers.py": "import scipy.ndimage  # noqa\nSCALE = 1.0\n"},
                      "helpers: import ndimage at module level")
    catalog = Catalog(scenarios={"reg": Scenario(name="reg", repo="r", script="train.py",
                                                 args=["--steps", "5", "--hidden", "16"])})
    agent = Agent(AgentConfig(repos={"r": repo}, catalog=catalog, warmup=False,
                              workspaces=Workspaces(tmp_path / "ws"), verifier=Verifier("k"),
                              profile_dir=tmp_path),
                  emitter=None)  # type: ignore[arg-type]
    rows = _explained(agent, "r", "reg", "imports", parent, culprit)
    assert rows and rows[0]["name"] == "helpers" and rows[0]["where"] == "changed", rows[:3]
    assert float(rows[0]["delta_ms"]) > 0  # type: ignore[arg-type]
    # what it pulled in, after it, ahead of whatever the machine slowed
    assert (rows[1]["name"], rows[1]["where"]) == ("scipy.ndimage", "new"), rows[:3]

