"""Outside this machine's embedded lab, no part starts with the development
key or a short one: anyone who can write to the commands topic would run code
on every agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttfb.settings import Settings
from ttfb.signing import DEFAULT_KEY


@pytest.mark.parametrize("key", [DEFAULT_KEY, "short-key"])
@pytest.mark.parametrize("command", [
    ["-m", "ttfb.cli", "agent"],
    ["-m", "streams.app"],
    ["-m", "ttfb.cli", "watch", "--repo", "."],
])
def test_a_remote_bus_with_a_weak_key_is_refused(tmp_path: Path, key: str,
                                                 command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTFB_")}
    env.update(TTFB_KAFKA_BOOTSTRAP="kafka.example:9092", TTFB_SIGNING_KEY=key,
               TTFB_DATA_DIR=str(tmp_path), TTFB_REPOS='{"main": "."}')
    result = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2, result.stderr
    assert "refusing to start on the bus kafka.example:9092" in result.stderr
    assert "TTFB_SIGNING_KEY" in result.stderr and key not in result.stderr


def test_the_embedded_lab_and_a_long_key_may_start(tmp_path: Path) -> None:
    base = Settings(data_dir=tmp_path, _env_file=None)
    assert base.key_refusal() == ""  # embedded bus: nothing leaves the machine
    remote = base.model_copy(update={"kafka_bootstrap": "kafka:9092"})
    assert remote.key_refusal()
    assert remote.model_copy(update={"embedded_lab": True}).key_refusal() == ""
    from pydantic import SecretStr

    strong = remote.model_copy(update={"signing_key": SecretStr("k" * 40)})
    assert strong.key_refusal() == ""
