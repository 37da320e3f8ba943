"""``ttfb demo-repo PATH``: a git repository of real training code with history.

The history is ordinary commits (docs, tests, configs, refactors that do not
change start-up time) with the three regressions seen in the field injected
at known commits, plus one improvement:

* config: a logging call believed asynchronous that blocks on a synchronous
  client (lm);
* data: memoization keyed by ``repr()`` of a huge structure (recsys);
* imports: a heavy import made eager that used to be lazy (vision);
* improvement: a heavy import made lazy (recsys).

``manifest.json`` in PATH's parent lists each injected change.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from agents.workspace import git

TEMPLATE = Path(__file__).parent / "demo_repo" / "template"
AUTHORS = [("Ada Park", "ada@example.com"), ("Bo Chen", "bo@example.com"),
           ("Cruz Diaz", "cruz@example.com"), ("Dee Evans", "dee@example.com")]


@dataclass
class Change:
    subject: str
    edits: list[tuple[str, str, str]] = field(default_factory=list)  # (path, old, new)
    files: dict[str, str] = field(default_factory=dict)  # path -> new content (appended)
    injected: dict[str, str] | None = None  # scenario, component, direction, description


def _ordinary() -> list[Change]:
    """The ordinary commits, in order. The injected changes come early (see
    ``_injected``), each after two ordinary commits that touch its scenario's
    package, so the story is told in the first dozen commits; the rest are
    the history every scenario needs to reach its first calibration."""
    return [
        Change("Note the tokenizer's merge order", edits=[(
            "trainlab/lm/tokenizer.py", '"""A byte-pair-encoding tokenizer trained on the corpus."""',
            '"""A byte-pair-encoding tokenizer trained on the corpus.\n\n'
            'Merges are applied in the order they were learned."""')]),
        Change("Document the LM context window", edits=[(
            "trainlab/lm/data.py", "class TokenWindows(Dataset):\n",
            "class TokenWindows(Dataset):\n    \"\"\"Sliding windows of `context` tokens and their"
            " next-token targets.\"\"\"\n\n")]),
        Change("Explain the dot interaction in DLRM", edits=[(
            "trainlab/recsys/model.py", "    def forward(self, dense, sparse):\n",
            "    def forward(self, dense, sparse):\n"
            "        # pairwise dot products between the dense vector and every embedding\n")]),
        Change("Document the synthetic image set", edits=[(
            "trainlab/vision/data.py", "def synthetic_images(count, size, classes, seed):\n",
            "def synthetic_images(count, size, classes, seed):\n"
            "    \"\"\"`count` images of one coloured shape each on faint noise, and their"
            " labels.\"\"\"\n")]),
        Change("Comment the horizontal flip", edits=[(
            "trainlab/vision/augment.py", "def random_flip(image, generator):\n",
            "def random_flip(image, generator):\n"
            "    # left-right only: the shapes have no up or down\n")]),
        Change("Clarify remap_ids ranking", edits=[(
            "trainlab/recsys/features.py", "        rank = np.empty_like(values)\n",
            "        # rank 0 is the most frequent id of the column\n"
            "        rank = np.empty_like(values)\n")]),
        Change("Document how to run the workflows", files={"docs/running.md": (
            "# Running\n\nEach workflow has `train.main(config)`; pass a dict of overrides.\n")}),
        Change("Describe the synthetic click log", edits=[(
            "trainlab/recsys/features.py", '    """Click-log records as they arrive from the'
            ' event pipeline."""\n', '    """Click-log records as they arrive from the event'
            ' pipeline.\n\n    Dense features are log-normal, ids follow a Zipf law.\n    """\n')]),
        Change("Add config validation tests", files={"tests/test_config.py": (
            "from trainlab.common.config import RunConfig, build\n\n\n"
            "def test_defaults():\n    assert build(RunConfig, {}).seed == 0\n")}),
        Change("Add example production configs", files={"configs/recsys.json": json.dumps(
            {"num_samples": 400000, "embedding_rows": 200000, "batch_size": 2048}, indent=2)}),
        Change("Add CONTRIBUTING guide", files={"CONTRIBUTING.md": (
            "# Contributing\n\nRun `python -m pytest tests` before sending a change.\n")}),
        Change("Test the tokenizer round trip", files={"tests/test_tokenizer.py": (
            "from trainlab.lm.tokenizer import train_tokenizer\n\n\n"
            "def test_encode_nonempty():\n"
            "    tok = train_tokenizer(['a b a b'], 3)\n    assert tok.encode('a b')\n")}),
        Change("Name the augmentation steps in the docs", files={"docs/augment.md": (
            "# Augmentations\n\nflip, crop with reflect padding, colour jitter, elastic (opt-in).\n")}),
        Change("Add vision config example", files={"configs/vision.json": json.dumps(
            {"num_images": 8000, "image_size": 64, "width": 64}, indent=2)}),
        Change("Add a changelog", files={"CHANGELOG.md": "# Changelog\n\n- Initial workflows.\n"}),
        Change("Test the shape of DLRM outputs", files={"tests/test_recsys.py": (
            "import torch\n\nfrom trainlab.recsys.model import DLRM\n\n\n"
            "def test_output_shape():\n"
            "    m = DLRM(3, 2, 10, 4, [8, 4], [8, 1])\n"
            "    out = m(torch.zeros(5, 3), torch.zeros(5, 2, dtype=torch.long))\n"
            "    assert out.shape == (5,)\n")}),
        Change("Explain residual blocks", edits=[(
            "trainlab/vision/model.py", "class Block(nn.Module):\n",
            "class Block(nn.Module):\n    \"\"\"Two 3x3 convolutions with a skip connection.\"\"\"\n\n")]),
        Change("Mention seeds in the README", edits=[(
            "README.md", "    python -m trainlab.recsys.train\n",
            "    python -m trainlab.recsys.train\n\nEvery workflow seeds Python, NumPy and"
            " PyTorch from `seed`.\n")]),
        Change("Add lm config example", files={"configs/lm.json": json.dumps(
            {"num_sentences": 100000, "context": 256, "width": 384}, indent=2)}),
        Change("Document device selection", edits=[(
            "trainlab/common/runtime.py", "def resolve_device(name):\n",
            "def resolve_device(name):\n    \"\"\"`auto` picks CUDA when present.\"\"\"\n")]),
        Change("Update the changelog", edits=[(
            "CHANGELOG.md", "- Initial workflows.\n",
            "- Initial workflows.\n- Configs, tests and docs.\n")]),
        Change("Test image augmentation keeps shape", files={"tests/test_augment.py": (
            "import torch\n\nfrom trainlab.vision.augment import default_pipeline\n\n\n"
            "def test_shape():\n    g = torch.Generator().manual_seed(0)\n"
            "    img = torch.rand(3, 16, 16)\n"
            "    assert default_pipeline(16)(img, g).shape == img.shape\n")}),
        Change("Add a docs index", files={"docs/index.md": (
            "# trainlab docs\n\n- running.md\n- augment.md\n")}),
        Change("Explain the causal mask", edits=[(
            "trainlab/lm/model.py", "    def forward(self, tokens):\n",
            "    def forward(self, tokens):\n        # the causal mask keeps each position from"
            " seeing later tokens\n")]),
        Change("Note test command in CONTRIBUTING", edits=[(
            "CONTRIBUTING.md", "before sending a change.\n",
            "before sending a change.\nKeep workflows deterministic: seed everything.\n")]),
        Change("Update the changelog for the release", edits=[(
            "CHANGELOG.md", "- Configs, tests and docs.\n",
            "- Configs, tests and docs.\n- Release 1.1.\n")]),
        # four small code changes every workflow runs: each scenario's history
        # reaches the length at which its thresholds are first calibrated (8
        # accepted commits), so the calibration page has each one's ROC by the end
        Change("Reject negative seeds", edits=[(
            "trainlab/common/config.py",
            "    def validate(self):\n        if self.device not in",
            "    def validate(self):\n        if self.seed < 0:\n"
            "            raise ConfigError(\"seed must be non-negative\")\n"
            "        if self.device not in")]),
        Change("Seed every CUDA device too", edits=[(
            "trainlab/common/runtime.py", "    torch.manual_seed(seed)\n",
            "    torch.manual_seed(seed)\n    if torch.cuda.is_available():\n"
            "        torch.cuda.manual_seed_all(seed)\n")]),
        Change("Require at least one batch", edits=[(
            "trainlab/common/config.py",
            "    def validate(self):\n        if self.seed < 0:\n",
            "    def validate(self):\n        if self.batches < 1:\n"
            "            raise ConfigError(\"batches must be at least 1\")\n"
            "        if self.seed < 0:\n")]),
        Change("List the phases the lab times", edits=[(
            "trainlab/common/lab.py", '__all__ = ["first_batch", "phase", "report"]\n',
            'PHASES = ("config", "data", "model", "first_step")\n\n'
            '__all__ = ["PHASES", "first_batch", "phase", "report"]\n')]),
    ]


def _injected() -> dict[int, Change]:
    """Injected changes by the position (among ordinary commits) they come
    before. Each scenario is measured at two ordinary commits touching its
    package before its change, so its baseline spans three moments of the
    machine, as a lab's does after a day, not one burst (a run measured a
    first commit's 5 runs in a slow spell, +25-30 % in every component,
    and a +20 % imports change read +5 % against it). The lm config change,
    the plainest, is first: the first alert comes after about 25 runs."""
    return {
        2: Change(
            "Log the validated LM config to telemetry",
            edits=[("trainlab/lm/train.py", "from trainlab.common.lab import first_batch, phase\n",
                    "from trainlab.common.lab import first_batch, phase\n"
                    "from trainlab.common.telemetry import SyncMetricsClient\n"),
                   ("trainlab/lm/train.py",
                    "        cfg = build(LMConfig, raw_config)\n",
                    "        cfg = build(LMConfig, raw_config)\n"
                    "        SyncMetricsClient().log(\"config\", workflow=\"lm\", **vars(cfg))\n")],
            injected={"scenario": "lm", "component": "config", "direction": "regression",
                      "description": "a logging call believed asynchronous that blocks on a "
                                     "synchronous client with retries"}),
        6: Change(
            "Import ndimage at module level in augment",
            edits=[("trainlab/vision/augment.py", "import torch\n",
                    "import torch\nfrom scipy import interpolate, ndimage\n"),
                   ("trainlab/vision/augment.py",
                    '    """Elastic deformation; needs scipy, imported only when used."""\n'
                    "    def warp(image, generator):\n"
                    "        from scipy import interpolate, ndimage\n\n",
                    '    """Elastic deformation with scipy\'s filters and interpolation."""\n'
                    "    def warp(image, generator):\n")],
            injected={"scenario": "vision", "component": "imports", "direction": "regression",
                      "description": "heavy imports (scipy.interpolate, scipy.ndimage) made "
                                     "eager that used to be lazy"}),
        7: Change(
            "Import scipy.optimize lazily in calibration",
            edits=[("trainlab/recsys/calibration.py", "from scipy import optimize\n", ""),
                   ("trainlab/recsys/calibration.py",
                    '    """Fit a, b so that sigmoid(a * logit + b) matches the observed click'
                    ' rate."""\n',
                    '    """Fit a, b so that sigmoid(a * logit + b) matches the observed click'
                    ' rate."""\n    from scipy import optimize\n\n')],
            injected={"scenario": "recsys", "component": "imports", "direction": "improvement",
                      "description": "a heavy import (scipy.optimize) made lazy"}),
        8: Change(
            "Memoize click-log conversion",
            edits=[("trainlab/recsys/features.py", "def to_arrays(records):\n",
                    "_ARRAYS = {}\n\n\ndef to_arrays(records):\n"
                    "    key = repr(records)\n    if key in _ARRAYS:\n"
                    "        return _ARRAYS[key]\n"),
                   ("trainlab/recsys/features.py",
                    "    clicks = np.array([r[\"click\"] for r in records], dtype=np.float32)\n"
                    "    return dense, sparse, clicks\n",
                    "    clicks = np.array([r[\"click\"] for r in records], dtype=np.float32)\n"
                    "    _ARRAYS[key] = dense, sparse, clicks\n    return dense, sparse, clicks\n")],
            injected={"scenario": "recsys", "component": "data", "direction": "regression",
                      "description": "memoization keyed by repr() of the whole click log"}),
    }


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return git(repo, *args, env=env).strip()


def _apply(repo: Path, change: Change) -> None:
    for rel, old, new in change.edits:
        path = repo / rel
        text = path.read_text()
        if old not in text:
            raise RuntimeError(f"demo history is broken: {rel} lacks {old!r}")
        path.write_text(text.replace(old, new, 1))
    for rel, content in change.files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if content.endswith("\n") else content + "\n")


def _commit(repo: Path, subject: str, number: int) -> str:
    name, email = AUTHORS[number % len(AUTHORS)]
    date = f"{1759309200 + number * 3600} +0000"
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
           "GIT_COMMITTER_DATE": date}
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", subject, env=env)
    return _git(repo, "rev-parse", "HEAD")


def write_demo_repo(path: Path) -> list[dict[str, str]]:
    """Create the repository at ``path`` and its manifest; returns the manifest.

    It is written in a hidden folder beside ``path`` and moved into place only
    when complete: an interrupted write leaves no repository that looks whole."""
    repo = Path(path).resolve()
    if repo.exists() and any(repo.iterdir()):
        raise FileExistsError(f"{repo} exists and is not empty")
    partial = repo.parent / f".{repo.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        manifest = _write_history(partial)
        (repo.parent / "manifest.json.partial").write_text(json.dumps(manifest, indent=2) + "\n")
        (repo.parent / "manifest.json.partial").replace(repo.parent / "manifest.json")
        partial.rename(repo)  # an empty folder at ``repo`` is replaced
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def _write_history(repo: Path) -> list[dict[str, str]]:
    shutil.copytree(TEMPLATE, repo, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "commit.gpgsign", "false")
    parent = _commit(repo, "Import trainlab training workflows", 0)
    manifest: list[dict[str, str]] = []
    injected = _injected()
    number = 1
    for position, change in enumerate(_ordinary()):
        for extra in ([injected[position]] if position in injected else []) + [change]:
            _apply(repo, extra)
            sha = _commit(repo, extra.subject, number)
            number += 1
            if extra.injected:
                manifest.append({"commit": sha, "parent": parent, **extra.injected})
            parent = sha
    return manifest
