from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ttfb.settings import Settings


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
