"""``ttfb init`` checks a script as the lab will run it: in a clean checkout
of HEAD, not in the user's working tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.init_cli import _slow_note
from agents.runner import RunOutcome

SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "scripts"


def repo_with(tmp_path: Path, prelude: str) -> Path:
    """A committed copy of a fixture script that first runs ``prelude``."""
    repo = tmp_path / "proj"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "train.py").write_text(
        prelude + (SCRIPTS / "regression_loop.py").read_text())
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@b",
                    "commit", "-qm", "train"], check=True)
    return repo


def init(tmp_path: Path, repo: Path, *flags: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    return subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "init", "--script", str(repo / "scripts" / "train.py"),
         *flags, "--", "--steps", "3"], capture_output=True, text=True, timeout=300,
        env={**env, "TTFB_DATA_DIR": str(tmp_path / "data"), **extra})


def worktrees(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True,
                          text=True, check=True).stdout


def test_a_committed_script_is_checked_in_a_checkout_and_written(tmp_path: Path) -> None:
    # the script leaves a file where it runs: not in the user's working tree
    repo = repo_with(tmp_path, "open('ran-here', 'w').close()\n")
    before = worktrees(repo)
    result = init(tmp_path, repo)
    assert result.returncode == 0, result.stderr
    assert 'script = "scripts/train.py"' in (repo / "ttfb.toml").read_text()
    assert not (repo / "ran-here").exists()
    assert worktrees(repo) == before  # the checkout is gone, from git's list too


def test_a_script_that_needs_untracked_data_is_refused_with_the_reason(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, "open('prepared/tokens.bin', 'rb').close()\n")
    (repo / "prepared").mkdir()
    (repo / "prepared" / "tokens.bin").write_bytes(b"\0" * 16)  # prepared, never committed
    before = worktrees(repo)
    result = init(tmp_path, repo)
    assert result.returncode == 1
    assert "fails in a clean checkout of HEAD" in result.stderr
    assert "FileNotFoundError" in result.stderr and "Traceback" not in result.stderr
    assert "prepared/tokens.bin is in the working copy and not in git" in result.stderr
    assert "--link prepared/tokens.bin" in result.stderr
    assert not (repo / "ttfb.toml").exists()
    assert worktrees(repo) == before


def test_untracked_data_read_at_a_path_of_the_repository_is_linked_into_each_checkout(
        tmp_path: Path) -> None:
    """A script that opens ``prepared/tokens.bin`` itself (no argument
    names it): ``--link`` gives every run's checkout a link to the working
    copy's file, and the catalog keeps it; the working copy is left as it is."""
    repo = repo_with(tmp_path, "open('prepared/tokens.bin', 'rb').close()\n")
    (repo / "prepared").mkdir()
    (repo / "prepared" / "tokens.bin").write_bytes(b"\0" * 16)
    result = init(tmp_path, repo, "--link", "prepared/tokens.bin")
    assert result.returncode == 0, result.stderr
    target = (repo / "prepared" / "tokens.bin").resolve()
    assert f'links = {{ "prepared/tokens.bin" = "{target}" }}' in (repo / "ttfb.toml").read_text()
    assert not (repo / "prepared" / "tokens.bin").is_symlink()
    missing = init(tmp_path, repo, "--name", "other", "--link", "prepared/absent.bin")
    assert missing.returncode == 2
    assert "there is no" in missing.stderr and "absent.bin" in missing.stderr


def test_a_module_the_interpreter_lacks_is_named_with_what_to_do(tmp_path: Path) -> None:
    """The lab runs a script with its own interpreter unless told another: a
    package only the project's environment has is named, with --python as
    the way out, and the traceback is the script's, without the lab's frames
    (its import hooks sat between every two of the script's)."""
    repo = repo_with(tmp_path, "import ttfb_absent_pkg.sub\n")
    result = init(tmp_path, repo)
    assert result.returncode == 1
    assert f"{sys.executable} has no module 'ttfb_absent_pkg'" in result.stderr, result.stderr
    assert "--python" in result.stderr
    assert 'train.py", line 1, in <module>' in result.stderr
    assert "launcher.py" not in result.stderr and "harness.py" not in result.stderr
    assert "frozen runpy" not in result.stderr
    assert not (repo / "ttfb.toml").exists()


def test_a_script_not_committed_is_refused_before_any_run(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, "")
    (repo / "scripts" / "new.py").write_text((SCRIPTS / "regression_loop.py").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "init", "--script", str(repo / "scripts" / "new.py")],
        capture_output=True, text=True, timeout=120, env={**env, "TTFB_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "no file 'scripts/new.py'" in result.stderr and "commit the script first" in \
        result.stderr
    assert not (repo / "ttfb.toml").exists()


def test_an_env_given_to_init_is_checked_with_and_written(tmp_path: Path) -> None:
    from agents.catalog import load_catalog

    repo = repo_with(tmp_path, "import os\nassert os.environ['DATA_ROOT'] == '/srv/d'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "init", "--script", str(repo / "scripts" / "train.py"),
         "--env", "DATA_ROOT=/srv/d", "--", "--steps", "3"], capture_output=True, text=True,
        timeout=300, env={**env, "TTFB_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    assert load_catalog(repo / "ttfb.toml").scenarios["train"].env == {"DATA_ROOT": "/srv/d"}


def test_a_script_stopped_at_its_step_limit_is_run_once_and_says_it_still_runs(
        tmp_path: Path) -> None:
    """A script that reaches no training step in time (a long evaluation
    first, say) fails once: running it again in the working tree would tell
    nothing and take as long. While it runs, init says it still does."""
    counter = tmp_path / "runs.txt"
    repo = repo_with(tmp_path, f"open({str(counter)!r}, 'a').write('run\\n')\n"
                               "import time\ntime.sleep(120)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "init", "--script", str(repo / "scripts" / "train.py"),
         "--timeout", "10", "--", "--steps", "3"], capture_output=True, text=True, timeout=120,
        env={**env, "TTFB_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 1
    assert "reached no training step within 5s" in result.stderr, result.stderr
    assert "still running after" in result.stderr
    assert counter.read_text() == "run\n"  # the checkout's run alone
    assert not (repo / "ttfb.toml").exists()


def test_a_script_that_reads_files_beside_it_runs_from_its_folder(tmp_path: Path) -> None:
    """pytorch/examples' scripts are run from their folder (``python
    main.py``) and read ``./data`` from there: where the run from the root
    fails, the script's folder is tried, and the catalog says so."""
    from agents.catalog import load_catalog

    repo = repo_with(tmp_path, "open('vocab.txt').close()\n")
    (repo / "scripts" / "vocab.txt").write_text("a b c\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@b",
                    "commit", "-qm", "vocab"], check=True)
    result = init(tmp_path, repo)
    assert result.returncode == 0, result.stderr
    assert "trying again from scripts/" in result.stderr
    assert "runs start in scripts/ (workdir)" in result.stdout
    assert load_catalog(repo / "ttfb.toml").scenarios["train"].workdir == "scripts"


def test_a_main_py_in_a_folder_is_named_by_its_folder(tmp_path: Path) -> None:
    """pytorch/examples keeps a main.py in each example's folder: the
    scenario is named by the folder, so a second one does not collide."""
    from agents.catalog import load_catalog

    repo = repo_with(tmp_path, "")
    (repo / "scripts" / "train.py").rename(repo / "scripts" / "main.py")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@b",
                    "commit", "-qm", "main"], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "init", "--script", str(repo / "scripts" / "main.py"),
         "--", "--steps", "3"], capture_output=True, text=True, timeout=300,
        env={**env, "TTFB_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    assert list(load_catalog(repo / "ttfb.toml").scenarios) == ["scripts"]


def test_a_workdir_given_to_init_is_the_only_one_tried(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, "open('vocab.txt').close()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    result = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "init", "--script", str(repo / "scripts" / "train.py"),
         "--workdir", str(repo), "--", "--steps", "3"], capture_output=True, text=True,
        timeout=300, env={**env, "TTFB_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 1
    assert "trying again" not in result.stderr and "vocab.txt" in result.stderr
    outside = subprocess.run(
        [sys.executable, "-m", "ttfb.cli", "init", "--script", str(repo / "scripts" / "train.py"),
         "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120,
        env={**env, "TTFB_DATA_DIR": str(tmp_path / "data")})
    assert outside.returncode == 2 and "is not a folder of the repository" in outside.stderr
    assert not (repo / "ttfb.toml").exists()


def test_a_workdir_reads_from_here_or_from_the_root(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.init_cli import _workdir

    root = tmp_path / "proj"
    (root / "ch02" / "code").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert _workdir("proj/ch02/code", root.resolve()) == "ch02/code"  # from here, as --script
    assert _workdir("ch02/code", root.resolve()) == "ch02/code"  # from the root, as kept
    assert _workdir("proj", root.resolve()) == ""
    with pytest.raises(ValueError, match="is not a folder of the repository"):
        _workdir("ch03", root.resolve())
    with pytest.raises(ValueError, match="is not a folder of the repository"):
        _workdir(str(tmp_path), root.resolve())


def test_a_package_an_editable_install_serves_from_the_working_copy_goes_on_the_path(
        tmp_path: Path) -> None:
    """``pip install -e .`` of a project whose package is in ``lib/`` puts the
    working copy's ``lib`` on the interpreter's path: the first run imports
    that, not the checkout's, and says so; init names the folder in the
    scenario's pythonpath and writes it once a run imports the checkout's."""
    repo = tmp_path / "proj"
    (repo / "lib" / "proj").mkdir(parents=True)
    (repo / "lib" / "proj" / "__init__.py").write_text("")
    (repo / "lib" / "proj" / "extra.py").write_text("X = 1\n")
    repo = repo_with(tmp_path, "import proj.extra\n")
    result = init(tmp_path, repo, PYTHONPATH=str(repo / "lib"))  # what the .pth does
    assert result.returncode == 0, result.stderr
    assert "trying again with lib/ on its path" in result.stderr
    assert 'pythonpath = [".", "lib"]' in (repo / "ttfb.toml").read_text()


def test_a_script_that_uses_hugging_face_datasets_is_told_how_to_measure_it_cold(
        tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    (repo / "datasets").mkdir(parents=True)  # stands in for the library: importable
    (repo / "datasets" / "__init__.py").write_text("")
    repo = repo_with(tmp_path, "from datasets import __name__ as _\n")
    result = init(tmp_path, repo)
    assert result.returncode == 0, result.stderr
    assert 'add HF_DATASETS_CACHE = "{run_tmp}/datasets" to its env' in result.stdout
    plain = repo_with(tmp_path / "plain", "import json\n")
    result = init(tmp_path / "plain", plain)
    assert result.returncode == 0, result.stderr
    assert "HF_DATASETS_CACHE" not in result.stdout


def test_a_slow_run_is_told_where_its_time_went() -> None:
    """A run of x-transformers' enwik8 script at its own sizes: 72 s, 65 of
    them its first step."""
    slow = RunOutcome("completed", components={"imports": 5552.0, "data": 888.0,
                                               "first_step": 65154.0})
    note = _slow_note(slow)
    assert note.startswith("each run takes 72 s (first_step 65 s of it)")
    assert "smaller sizes in the script's arguments" in note
    assert _slow_note(RunOutcome("completed", components={"imports": 3332.0,
                                                          "first_step": 614.0})) == ""
