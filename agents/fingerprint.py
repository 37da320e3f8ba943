"""Hardware and software fingerprint, so baselines never mix machines."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from ttfb.events import Fingerprint


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def gpu_and_driver() -> tuple[str, str]:
    """GPU model and driver from nvidia-smi, without importing torch."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return "", ""
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "", ""
    first = out.strip().splitlines()[0] if out.strip() else ""
    name, _, driver = first.partition(",")
    return name.strip(), driver.strip()


def torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return ""


def hardware_class(configured: str = "") -> str:
    """The agent's hardware class: as configured, else ``cuda`` where a GPU is
    visible and ``cpu`` elsewhere."""
    return configured or ("cuda" if gpu_and_driver()[0] else "cpu")


def fingerprint(facts: dict[str, Any] | None = None, hw_class: str = "") -> Fingerprint:
    """This host's fingerprint, refined by what the workflow process reported."""
    facts = facts or {}
    gpu, driver = gpu_and_driver()
    return Fingerprint(hardware_class=hw_class,
        host=socket.gethostname(), cpu=cpu_model(), gpu=str(facts.get("gpu", gpu)),
        python=str(facts.get("python", platform.python_version())),
        torch=str(facts.get("torch", torch_version())), driver=driver,
        device=str(facts.get("device", "cpu")),
    )
