"""The runner against small workflows (no torch), including misbehaving ones."""

from pathlib import Path

import pytest

from agents.runner import RunSpec, parse_marks, run_once
from ttfb.events import COMPONENTS

GOOD = '''
import time
from ttfb.sdk import phase, first_batch
def main(config):
    with phase("config"):
        time.sleep(0.01)
    with phase("data"):
        time.sleep(0.02)
    first_batch()
    with phase("model"):
        time.sleep(0.01)
    with phase("first_step"):
        time.sleep(config.get("step", 0.01))
'''


def workflow(tmp_path: Path, body: str) -> RunSpec:
    pkg = tmp_path / "wf"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text(body)
    return RunSpec(root=tmp_path, entry="wf.train:main", timeout_s=20)


def test_components_are_measured_and_sum(tmp_path: Path) -> None:
    outcome = run_once(workflow(tmp_path, GOOD))
    assert outcome.status == "completed", outcome.reason
    assert list(outcome.components) == list(COMPONENTS)
    assert all(v > 0 for v in outcome.components.values())
    assert outcome.components["data"] >= 20 and outcome.components["config"] >= 10
    assert outcome.phases == ["imports", "config", "data", "model", "first_step"]
    assert outcome.modules == ["wf/__init__.py", "wf/train.py"]


def test_the_files_a_run_reads_are_its_footprint_with_its_modules(tmp_path: Path) -> None:
    """A config or data file the workflow reads, or a process it forks reads,
    is part of what a commit must change for the scenario to be measured;
    what it writes, or reads outside the repository, is not."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "model.yaml").write_text("layers: 2\n")
    (tmp_path / "vocab.bin").write_bytes(b"\0" * 8)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("x")
    body = GOOD.replace("def main(config):", f"""import os
def main(config):
    open("conf/model.yaml").read()
    os.close(os.open("vocab.bin", os.O_RDONLY))
    open({str(outside)!r}).read()
    with open("out/log.txt", "w") as log:
        log.write("started")
    os.close(os.open("out/state.bin", os.O_WRONLY | os.O_CREAT))
    worker = os.fork()  # a DataLoader's worker, as fork starts it
    if worker == 0:
        open("shards/0.txt").read()
        os._exit(0)
    os.waitpid(worker, 0)""")
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "0.txt").write_text("tokens")
    (tmp_path / "out").mkdir()
    outcome = run_once(workflow(tmp_path, body))
    assert outcome.status == "completed", outcome.reason
    assert outcome.modules == ["conf/model.yaml", "shards/0.txt", "vocab.bin", "wf/__init__.py",
                               "wf/train.py"]


def test_config_reaches_the_workflow(tmp_path: Path) -> None:
    spec = workflow(tmp_path, GOOD)
    slow = run_once(RunSpec(**{**spec.__dict__, "config": {"step": 0.3}}))
    assert slow.components["first_step"] >= 300


@pytest.mark.parametrize(("body", "reason"), [
    ("def main(config):\n    raise SystemExit(3)\n", "exited with code 3"),
    ("def main(config):\n    1/0\n", "exited with code 1"),
    ("import time\ndef main(config):\n    time.sleep(60)\n", "hung"),
    ("import os\ndef main(config):\n    os.write(int(os.environ['TTFB_SDK_FD']), b'garbage\\n')\n",
     "malformed report"),
    ("from ttfb.sdk import phase\ndef main(config):\n    pass\n", "reported no config"),
    ("import os, sys\ndef main(config):\n    while True:\n        sys.stdout.write('x' * 65536)\n",
     "flooded"),
])
def test_misbehaving_workflows_fail_cleanly(tmp_path: Path, body: str, reason: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.runner as runner

    monkeypatch.setattr(runner, "MAX_OUTPUT_BYTES", 8 * 1024 * 1024)
    spec = workflow(tmp_path, body)
    outcome = run_once(RunSpec(**{**spec.__dict__, "timeout_s": 3}))
    assert outcome.status == "failed"
    assert reason in outcome.reason


def test_crash_keeps_the_stderr_tail(tmp_path: Path) -> None:
    outcome = run_once(workflow(tmp_path, "def main(config):\n    raise ValueError('kaboom')\n"))
    assert "ValueError: kaboom" in outcome.stderr_tail


def test_missing_interpreter_fails_cleanly(tmp_path: Path) -> None:
    spec = workflow(tmp_path, GOOD)
    outcome = run_once(RunSpec(**{**spec.__dict__, "python": "/nonexistent/python"}))
    assert outcome.status == "failed" and "could not start" in outcome.reason


def test_env_override_reaches_the_workflow(tmp_path: Path) -> None:
    body = GOOD.replace('time.sleep(config.get("step", 0.01))',
                        'import os; time.sleep(float(os.environ["STEP_S"]))')
    spec = workflow(tmp_path, body)
    outcome = run_once(RunSpec(**{**spec.__dict__, "env": {"STEP_S": "0.25"}}))
    assert outcome.components["first_step"] >= 250


def test_parse_marks_rejects_inverted_phase() -> None:
    raw = b"S\t100\nM\tconfig\t50\t10\nE\t200\n"
    assert "ends before it starts" in parse_marks(raw, 0, 10).reason


def _package(folder: Path, where: str) -> None:
    (folder / "proj").mkdir(parents=True)
    (folder / "proj" / "__init__.py").write_text(f"WHERE = {where!r}\n")


def _writes_where(path: Path) -> str:
    """A workflow that writes to ``path`` where the ``proj`` it imported says it is."""
    return GOOD.replace("def main(config):", f"""import proj
def main(config):
    open({str(path)!r}, "w").write(proj.WHERE)""")


@pytest.mark.parametrize("layout", ["src", "lib"])
def test_the_commits_package_runs_not_the_working_copys_on_the_path(tmp_path: Path,
                                                                     layout: str) -> None:
    """A project installed editable (``pip install -e .``) has its working
    copy's package folder on every interpreter's path: the run must import the
    checkout's. ``src/`` is found by itself; any other folder, named in the
    scenario's pythonpath, is, and without it the run fails and says why
    rather than measure the working copy."""
    import subprocess

    checkout, working = tmp_path / "checkout", tmp_path / "working-copy"
    _package(checkout / layout, "checkout")
    _package(working / layout, "working copy")
    subprocess.run(["git", "init", "-q", str(working)], check=True)
    body = _writes_where(tmp_path / "where.txt")
    spec = workflow(checkout, body)
    # what an editable install's .pth does: the working copy's folder on sys.path
    editable = {"PYTHONPATH": str(working / layout)}
    outcome = run_once(RunSpec(**{**spec.__dict__, "env": editable}))
    if layout == "src":
        assert outcome.status == "completed", outcome.reason
    else:
        assert outcome.status == "failed"
        assert (f"imported the repository's 'proj' from {working / layout / 'proj'}"
                in outcome.stderr_tail)
        assert (tmp_path / "where.txt").read_text() == "working copy"  # the trap is real
        outcome = run_once(RunSpec(**{**spec.__dict__, "env": editable,
                                      "pythonpath": (".", layout)}))
        assert outcome.status == "completed", outcome.reason
    assert (tmp_path / "where.txt").read_text() == "checkout"
    assert f"{layout}/proj/__init__.py" in outcome.modules


def test_a_package_of_the_same_name_from_another_project_is_not_the_repositorys(
        tmp_path: Path) -> None:
    """A repository that keeps a copy of a package in a folder of its own
    (``vendor/proj``) and imports the one installed from another project's
    working tree runs: that file is not where the repository keeps it."""
    import subprocess

    checkout, other = tmp_path / "checkout", tmp_path / "other-project"
    _package(checkout / "vendor", "vendored")
    _package(other, "the other project")
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    body = _writes_where(tmp_path / "where.txt")
    spec = workflow(checkout, body)
    outcome = run_once(RunSpec(**{**spec.__dict__, "env": {"PYTHONPATH": str(other)}}))
    assert outcome.status == "completed", outcome.reason
    assert (tmp_path / "where.txt").read_text() == "the other project"


def test_each_run_starts_with_its_own_empty_compiler_caches(tmp_path: Path) -> None:
    """A torch.compile run that finds what an earlier run compiled takes a
    third of a cold job's time: each run gets fresh cache folders (removed
    after it), unless the scenario names a cache the team's jobs share."""
    import json

    seen = tmp_path / "seen.jsonl"
    body = GOOD.replace("def main(config):", f"""import json, os
def main(config):
    folders = {{k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
        empty = not os.listdir(folder)
        open(os.path.join(folder, "compiled.bin"), "w").write("kernel")
    with open({str(seen)!r}, "a") as out:
        out.write(json.dumps({{"folders": folders, "empty": empty}}) + "\\n")""")
    spec = workflow(tmp_path, body)
    for _ in range(2):
        assert run_once(spec).status == "completed"
    runs = [json.loads(line) for line in seen.read_text().splitlines()]
    first, second = (set(r["folders"].values()) for r in runs)
    assert not first & second and all(r["empty"] for r in runs)
    assert not any(Path(f).exists() for f in first | second)  # removed after each run
    shared = tmp_path / "shared-cache"
    env = {"TORCHINDUCTOR_CACHE_DIR": str(shared), "TRITON_CACHE_DIR": str(shared / "t")}
    for _ in range(2):
        assert run_once(RunSpec(**{**spec.__dict__, "env": env})).status == "completed"
    warm = [json.loads(line) for line in seen.read_text().splitlines()][2:]
    assert [r["empty"] for r in warm] == [True, False]  # the second found the first's
    assert (shared / "compiled.bin").exists()


def test_a_scenarios_env_names_the_runs_own_folder_with_run_tmp(tmp_path: Path) -> None:
    """``{run_tmp}`` in a scenario's env value is a folder of the run's own,
    empty and removed after it: a cache the scenario wants cold at every run
    (Hugging Face datasets' converted and mapped files)."""
    seen = tmp_path / "seen.txt"
    body = GOOD.replace("def main(config):", f"""import os
def main(config):
    folder = os.environ["HF_DATASETS_CACHE"]
    os.makedirs(folder)
    open(os.path.join(folder, "mapped.arrow"), "w").write("rows")
    open({str(seen)!r}, "a").write(folder + "\\n")""")
    spec = workflow(tmp_path, body)
    env = {"HF_DATASETS_CACHE": "{run_tmp}/datasets"}
    for _ in range(2):
        outcome = run_once(RunSpec(**{**spec.__dict__, "env": env}))
        assert outcome.status == "completed", outcome.stderr_tail
    folders = seen.read_text().split()
    assert len(set(folders)) == 2 and all(f.endswith("/datasets") for f in folders)
    assert not any("{run_tmp}" in f or Path(f).exists() for f in folders)


def test_a_package_from_the_working_copys_submodule_fails_the_run_and_says_so(
        tmp_path: Path) -> None:
    """The lab's checkouts hold no submodules: a run that imports the
    repository's submodule's package from the working copy (an editable
    install of it) measures the working copy's code, and says so instead."""
    import subprocess

    def git(*args: str, cwd: Path) -> None:
        subprocess.run(["git", "-c", "user.name=a", "-c", "user.email=a@b",
                        "-c", "protocol.file.allow=always", *args], cwd=cwd, check=True,
                       capture_output=True)

    library, working = tmp_path / "library", tmp_path / "working-copy"
    _package(library, "the submodule")
    git("init", "-q", str(library), cwd=tmp_path)
    git("add", "-A", cwd=library)
    git("commit", "-qm", "library", cwd=library)
    git("init", "-q", str(working), cwd=tmp_path)
    git("submodule", "add", "-q", str(library), "third_party/library", cwd=working)
    checkout = tmp_path / "checkout"
    (checkout / "third_party" / "library").mkdir(parents=True)  # a gitlink's empty folder
    body = GOOD.replace("def main(config):", "import proj\ndef main(config):")
    spec = workflow(checkout, body)
    editable = {"PYTHONPATH": str(working / "third_party" / "library")}
    outcome = run_once(RunSpec(**{**spec.__dict__, "env": editable}))
    assert outcome.status == "failed"
    assert ("it is in a git submodule, and the lab checks out no submodules"
            in outcome.stderr_tail)
