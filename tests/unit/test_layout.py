"""The layout holds: no module too long to hold in one's head, no import
cycle, the core imports no application folder, and the public API is what
it says."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("ttfb", "producers", "agents", "streams", "dashboard", "bench")
APPS = ("producers", "agents", "streams", "dashboard")
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            if "demo_repo" in path.parts:  # the demo's training code, run by the agent
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, at top level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def test_no_module_is_over_400_lines() -> None:
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_there_is_no_import_cycle() -> None:
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    # a package imports its own modules to re-export them: not a cycle
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None


def test_the_detector_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return
    raise AssertionError("a cycle went unseen")


def test_the_core_imports_no_application_folder() -> None:
    known = modules()
    offending = {name: sorted(m for m in imports(path, known) if m.split(".")[0] in APPS)
                 for name, path in known.items() if name.split(".")[0] == "ttfb"}
    assert not {k: v for k, v in offending.items() if v}, offending


def test_the_public_api_is_pinned() -> None:
    import ttfb
    import ttfb.events

    assert sorted(ttfb.__all__) == ["__version__", "first_batch", "phase", "report",
                                    "timed_first_batch", "timed_iter"]
    assert all(hasattr(ttfb, name) for name in ttfb.__all__)
    assert len(ttfb.events.EVENT_TYPES) == 26
    assert set(ttfb.events.EVENT_TYPES) <= set(ttfb.events.__all__)


def test_the_compose_file_parses_and_its_services_report_health() -> None:
    """Every long-running service but the watcher (a loop with no port) has a
    healthcheck, and the streams, sink and agent ones ask the ports they serve."""
    import yaml

    from ttfb.settings import Settings

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {n for n, s in services.items() if "healthcheck" not in s} == {"init", "watch"}
    defaults = Settings(_env_file=None)
    assert f":{defaults.streams_metrics_port}/health" in str(services["streams"]["healthcheck"])
    assert f":{defaults.agent_metrics_port}/health" in str(services["agent"]["healthcheck"])
    assert f":{defaults.sink_metrics_port}/health" in str(services["sink"]["healthcheck"])
    assert f":{defaults.api_port}/api/v1/health" in str(services["api"]["healthcheck"])
