from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ttfb import native
from ttfb.settings import Settings

native.install()  # (once per process: what ``ttfb.stats`` and ``streams`` would do)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that patches a fold's internals sees no effect where the folds
    are compiled (they call each other directly): skipped there, and run on
    the Python folds by ``tests/unit/test_native.py``."""
    if not native.active():
        return
    skip = pytest.mark.skip(reason="patches the folds' internals, which their compiled "
                            "build calls directly (test_native.py runs it on the Python ones)")
    for item in items:
        if "python_folds" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in list(__import__("os").environ):
        if key.startswith("TTFB_"):
            monkeypatch.delenv(key)
    return Settings(data_dir=tmp_path / "data", _env_file=None)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False
