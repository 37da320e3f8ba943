"""`ttfb run --script` measures unmodified PyTorch training scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ttfb.events import COMPONENTS

SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "scripts"


@pytest.mark.parametrize(("script", "args"), [
    ("mnist_example.py", ["--batch-size", "32", "--epochs", "5"]),
    ("regression_loop.py", ["--steps", "1000"]),
    ("char_rnn.py", ["--epochs", "3"]),
])
def test_unmodified_scripts_get_every_component(script: str, args: list[str]) -> None:
    source = (SCRIPTS / script).read_text()
    assert "ttfb" not in source  # the scripts have never heard of the lab
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "run", "--script", str(SCRIPTS / script),
         "--runs", "1", "--json", "--", *args],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["fingerprint"]["torch"]
    for run in report["runs"]:
        assert run["status"] == "completed"
        assert list(run["components"]) == list(COMPONENTS)
        assert all(v > 0 for v in run["components"].values()), run["components"]
        assert abs(sum(run["components"].values()) - run["ttfb_ms"]) < 1.0
        # the run stops after the first step: far less than a full training run
        assert run["ttfb_ms"] < 60_000


IDIOMS = [  # (script, arguments, the flag naming the checkpoint it writes when it ends)
    ("word_lm.py", ["--epochs", "3"], "--save"),
    ("nanogpt_style.py", [], "--out"),
    ("dqn_cartpole.py", [], "--save"),
    ("ncf_recsys.py", [], "--save"),
    ("lightning_style.py", [], "--save"),
    ("hf_style.py", [], "--output_dir"),
    ("maml_manual.py", [], "--save"),
    ("tabular_lbfgs.py", [], "--save"),
    ("dcgan_style.py", [], "--outf"),
]


@pytest.mark.parametrize(("script", "args", "save"), IDIOMS, ids=[i[0] for i in IDIOMS])
def test_scripts_of_every_idiom_stop_after_their_first_step(
        tmp_path: Path, script: str, args: list[str], save: str) -> None:
    """With or without a DataLoader, torch.optim, or a trainer's closure: the
    first step is found and the script stopped there, before it trains on
    and writes its checkpoint. (One run each, as the agent makes them.)"""
    from agents.runner import RunSpec, run_once

    source = (SCRIPTS / script).read_text()
    assert "ttfb" not in source
    checkpoint = tmp_path / "checkpoint"
    run = run_once(RunSpec(root=tmp_path, script=str(SCRIPTS / script), timeout_s=120,
                           args=(*args, save, str(checkpoint))))
    assert run.status == "completed", (run.reason, run.stderr_tail)
    assert list(run.components) == list(COMPONENTS)
    assert run.components["imports"] > 0 and run.components["first_step"] > 0, run.components
    assert run.facts.get("torch")  # the workflow process reported its software
    assert not list(tmp_path.glob("checkpoint*")), "the script ran to completion"


EVAL_FIRST = """
import time
import torch
from torch import nn


class Slow(nn.Linear):
    def forward(self, x):
        time.sleep(0.3)
        import math  # already loaded: no import (torch's own code does this too)
        return super().forward(x) * math.e


model = Slow(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


@torch.no_grad()
def evaluate():
    return sum(model(torch.ones(2, 4)).sum().item() for _ in range(2))


evaluate()  # as nanoGPT does at iteration 0, before the first step
loss = model(torch.ones(2, 4)).sum()
loss.backward()
optimizer.step()
"""


def test_an_evaluation_before_the_first_step_is_not_counted_as_config(tmp_path: Path) -> None:
    """Data starts where set-up ends (here the optimizer's construction): an
    import of a module already loaded, inside the evaluation, must not move
    that point, or the evaluation's forward passes would be counted as config."""
    from agents.runner import RunSpec, run_once

    script = tmp_path / "eval_first.py"
    script.write_text(EVAL_FIRST)
    run = run_once(RunSpec(root=tmp_path, script=str(script), timeout_s=120))
    assert run.status == "completed", (run.reason, run.stderr_tail)
    assert run.components["config"] < 300, run.components
    assert 550 <= run.components["data"] < 2000, run.components


HAND_MADE_CORPUS = """
import time
from io import open  # as pytorch/examples' word_language_model reads its corpus
import torch
from torch import nn

with open("settings.yaml") as f:  # configuration: still config
    f.read()
time.sleep(0.4)
with open("corpus.txt", encoding="utf8") as f:  # the data, tokenized by hand
    words = f.read().split()
time.sleep(0.6)
ids = torch.tensor([len(w) % 10 for w in words])
model = nn.Embedding(10, 4)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model(ids).sum().backward()
optimizer.step()
"""


def test_a_corpus_read_by_hand_is_data_and_a_config_file_is_not(tmp_path: Path) -> None:
    """No Dataset, no DataLoader: data starts where the script first reads a
    data file, not where the model is built (everything before it was config)."""
    from agents.runner import RunSpec, run_once

    (tmp_path / "settings.yaml").write_text("lr: 0.1\n")
    (tmp_path / "corpus.txt").write_text("the quick brown fox\n" * 100)
    script = tmp_path / "hand_made.py"
    script.write_text(HAND_MADE_CORPUS)
    run = run_once(RunSpec(root=tmp_path, script=str(script), timeout_s=120))
    assert run.status == "completed", (run.reason, run.stderr_tail)
    assert 380 <= run.components["config"] < 1000, run.components
    assert 580 <= run.components["data"] < 2000, run.components


def test_a_script_that_imports_relatively_runs_as_its_package_module(tmp_path: Path) -> None:
    """``python -m trainer.train`` is how such a script runs (``python
    trainer/train.py`` fails on ``from .model import Net``): the lab runs it
    so, its package's import counted as imports."""
    from agents.runner import RunSpec, run_once

    package = tmp_path / "trainer"
    package.mkdir()
    (package / "__init__.py").write_text("import time\ntime.sleep(0.3)  # a heavy package\n")
    (package / "model.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Linear):\n    def __init__(self):\n"
        "        super().__init__(4, 1)\n")
    (package / "train.py").write_text(
        "import torch\nfrom .model import Net\n\n\ndef main():\n    model = Net()\n"
        "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "    model(torch.ones(2, 4)).sum().backward()\n    opt.step()\n\n\n"
        "if __name__ == '__main__':\n    main()\n")
    run = run_once(RunSpec(root=tmp_path, script="trainer/train.py", timeout_s=120))
    assert run.status == "completed", (run.reason, run.stderr_tail)
    assert run.components["imports"] >= 300 and run.components["model"] > 0, run.components
    assert run.components["config"] < 300, run.components


@pytest.mark.parametrize(("body", "message"), [
    ("import time, torch\nwhile True:\n    time.sleep(0.05)\n", "reached no training step"),
    ("import torch\nm = torch.nn.Linear(2, 1)\nwith torch.no_grad():\n    while True:\n"
     "        m(torch.ones(1, 2))\n", "without gradients, an evaluation before training?"),
    ("import torch\nprint(torch.zeros(3).sum())\n", "ended without a training step"),
])
def test_a_script_with_no_step_is_stopped_with_a_reason(tmp_path: Path, body: str,
                                                        message: str) -> None:
    script = tmp_path / "nostep.py"
    script.write_text(body)
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "run", "--script", str(script), "--json",
         "--timeout", "8"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    run = json.loads(result.stdout)["runs"][0]
    assert run["status"] == "failed" and message in run["stderr_tail"], run


def test_script_that_crashes_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import torch\nraise RuntimeError('no data found')\n")
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "run", "--script", str(script), "--json"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    run = json.loads(result.stdout)["runs"][0]
    assert run["status"] == "failed" and "no data found" in run["stderr_tail"]


def test_a_script_scenario_shrinks_checks_parity_and_explains(tmp_path: Path) -> None:
    """Argument rules, `ttfb shrink --check`, and a profile of a script run."""
    import os

    from agents.catalog import load_catalog
    from agents.explain import summarise_profile
    from agents.runner import run_once
    from agents.spec import spec_for

    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "train.py").write_text((SCRIPTS / "regression_loop.py").read_text())
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@b",
                    "commit", "-qm", "init"], check=True)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[scenario]]\nname = "reg"\nrepo = "repo"\nscript = "scripts/train.py"\n'
                       'args = ["--steps", "100000", "--hidden", "4096"]\n'
                       '[scenario.shrink.cap]\n"--hidden" = 32\n"--steps" = 10\n')
    env = {**os.environ, "TTFB_CATALOG": str(catalog), "TTFB_DATA_DIR": str(tmp_path / "d")}
    shown = subprocess.run([sys.executable, "-m", "ttfb.cli", "shrink", "--scenario", "reg"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert json.loads(shown.stdout) == {"args": ["--steps", "10", "--hidden", "32"]}
    checked = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "shrink", "--scenario", "reg", "--check", "--json",
         "--repo", str(repo)], capture_output=True, text=True, env=env, timeout=300)
    report = json.loads(checked.stdout)
    assert report["parity"] is True, report
    assert report["shrunk_config"] == {"args": ["--steps", "10", "--hidden", "32"]}
    spec = spec_for(load_catalog(catalog).scenarios["reg"], repo)
    profiled = run_once(type(spec)(**{**spec.__dict__, "profile_path": str(tmp_path / "p.prof"),
                                      "env": {"PYTHONPROFILEIMPORTTIME": "1"}}))
    assert profiled.status == "completed", profiled.reason
    summary = summarise_profile(tmp_path / "p.prof", root=repo)  # what an explanation diffs
    assert any(name.startswith("train.py:") for name in summary["repository"]), summary
    # the lab's harness and launcher wrap the script, and run it with runpy:
    # their frames hold the whole run on both sides and explain nothing
    assert not any(name.split(":")[0] in ("harness.py", "launcher.py", "sdk.py",
                                          "<frozen runpy>") for name in summary["cumulative_ms"])
    assert (tmp_path / "p.prof.imports").stat().st_size > 0
