"""The lab supervisor: ``ttfb up``, and the lab a one-off command runs in.

Starts the bus (embedded Tansu unless a cluster is configured), creates the
topics, migrates the store, then spawns the streams worker, the agent and
(unless headless) the dashboard. Every child is in its own process group and
dies with its parent (PR_SET_PDEATHSIG); on exit, Ctrl-C or SIGTERM all of
them are stopped, so no process is left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from producers.commands import CommandSender
from ttfb import events as ev
from ttfb.bus import EmbeddedBroker, ensure_topics
from ttfb.labinfo import forget_bus, record_bus, running_lab
from ttfb.process import (
    LAB_PID_ENV,
    RECEIVED,
    die_with_parent,
    interrupted_by,
    raise_if_interrupted,
)
from ttfb.settings import Settings
from ttfb.store import Store, open_store, queries

DASHBOARD_APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def _die_with_parent(slots: int = 1, parent: int | None = None,
                     sig: int = signal.SIGTERM) -> None:
    """Linux: the child gets ``sig`` when the lab process dies, even by SIGKILL.

    It also keeps off the last cores, which the agent reserves for workflows,
    so the lab's own work does not add noise to the measurements.
    """
    with contextlib.suppress(Exception):
        die_with_parent(sig, parent)
    lab_cores(slots)


def lab_cores(slots: int = 1) -> None:
    """Pin the calling process off the agent's slots: every core of the machine
    but its last ``slots`` (the count ``agents.service.usable_slots`` gives)."""
    if hasattr(os, "sched_getaffinity"):
        machine = os.cpu_count() or 1
        keep = [c for c in sorted(os.sched_getaffinity(0)) if c < machine - slots]
        if keep:
            os.sched_setaffinity(0, keep)


# children whose end does not end the lab: the JSON API (its port may be taken)
OPTIONAL = ("api",)


class Lab:
    """The running lab's child processes."""

    def __init__(self, settings: Settings, headless: bool = True,
                 home: Path | None = None, rebuild: bool = False) -> None:
        # rebuild: the streams worker folds the store's event log into its
        # decision state on start (the embedded broker remembers nothing)
        self.settings = settings.model_copy(update={"rebuild_state": rebuild}) \
            if rebuild and settings.embedded_bus else settings
        if self.settings.embedded_bus:  # its children talk to its own loopback broker
            self.settings = self.settings.model_copy(update={"embedded_lab": True})
        # the store's writes in a process of their own, beside the decision worker
        self.settings = self.settings.model_copy(update={"sink_apart": True})
        self.headless = headless
        self.home = home  # also told where this lab's bus and store are
        self.broker: EmbeddedBroker | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self.logs = settings.data_dir / "logs"
        self.slots = 1  # the agent's slots, as many cores kept free of the lab's processes

    def start(self) -> Lab:
        self.logs.mkdir(parents=True, exist_ok=True)
        from agents.service import usable_slots

        self.slots = slots = usable_slots(self.settings.agent_slots, os.cpu_count() or 1)
        lab_cores(slots)  # this process too polls the store: keep it off the workflows' cores
        if self.settings.embedded_bus:
            # the broker too dies with the lab, whatever ends it (kill -9 included);
            # it keeps nothing on disk, so at once
            self.broker = EmbeddedBroker(log_path=self.logs / "broker.log",
                                         preexec=functools.partial(_die_with_parent, slots,
                                                                   os.getpid(), signal.SIGKILL))
            self.broker.start()
            self.settings = self.settings.model_copy(
                update={"kafka_bootstrap": self.broker.bootstrap})
        asyncio.run(ensure_topics(self.settings))
        record_bus(self.settings, self.home)
        open_store(self.settings)  # migrate once, before the sink and dashboard start
        self.spawn("sink", [sys.executable, "-m", "streams.sink_service"])
        self.spawn("streams", [sys.executable, "-m", "streams.app"])
        self.spawn("agent", [sys.executable, "-m", "agents.service"])
        if not self.headless:
            self.spawn("dashboard", [
                sys.executable, "-m", "streamlit", "run", str(DASHBOARD_APP),
                "--server.address", self.settings.dashboard_host,
                "--server.port", str(self.settings.dashboard_port),
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
                # no "Deploy" (to Streamlit's cloud) or developer menu for the lab's users
                "--client.toolbarMode", "viewer"])
            self.spawn("api", [sys.executable, "-m", "producers.api"])
        raise_if_interrupted()
        return self

    def spawn(self, name: str, cmd: list[str]) -> None:
        self.commands[name] = cmd
        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1",
               LAB_PID_ENV: str(os.getpid())}
        with open(self.logs / f"{name}.log", "ab") as log:
            self.children[name] = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=functools.partial(_die_with_parent, self.slots,  # noqa: PLW1509
                                             os.getpid()),
                cwd=Path(__file__).resolve().parent.parent)

    def restart(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one child (SIGKILL: no clean shutdown) and start it again."""
        proc = self.children.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait()
        self.spawn(name, self.commands[name])

    def check(self) -> None:
        """Raise if a child died, or if a signal came whose raise was lost."""
        raise_if_interrupted()
        for name, proc in list(self.children.items()):
            if proc.poll() is None:
                continue
            tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
            if name in OPTIONAL:  # the lab measures and decides without it: said once
                print(f"lab: the {name} stopped (code {proc.returncode}); the lab goes on "
                      f"without it:\n{tail.strip()[-500:]}", file=sys.stderr)
                del self.children[name]
                continue
            raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{tail}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every child, gently (SIGTERM) for up to ``timeout``; a second
        Ctrl-C or SIGTERM while stopping (or before, since the first) kills
        what is left at once."""
        hurry = threading.Event()
        if len(RECEIVED) > 1:  # the second came before this handler
            hurry.set()
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: hurry.set())
        try:
            procs = list(self.children.values())
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for proc in procs:
                while proc.poll() is None:
                    if hurry.is_set() or time.monotonic() > deadline:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        break
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(0.05)
            self.children.clear()
            with contextlib.suppress(OSError):
                forget_bus(self.settings, self.home)
            if self.broker is not None:
                self.broker.stop(timeout=0.2 if hurry.is_set() else 5.0)
                self.broker = None
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_demo_repo(settings: Settings) -> Settings:
    """With no repositories configured, use (and if needed create) the demo one."""
    if settings.repos:
        return settings
    from agents.demo_history import write_demo_repo

    path = settings.data_dir / "demo" / "repo"
    if not (path / ".git").exists():
        write_demo_repo(path)
    return settings.model_copy(update={"repos": {"demo": str(path)}})


def wait_for_runs(lab: Lab, store: Store, request_ids: list[str], wanted: int,
                  timeout: float, progress: Any = None) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lab.check()
        rows = queries.runs_for_requests(store, request_ids)
        if progress is not None:
            progress(rows)
        if len(rows) >= wanted:
            return rows
        time.sleep(1.0)
    raise TimeoutError(f"only {len(rows)} of {wanted} runs reached the store in {timeout:.0f}s")


def request_demo_runs(settings: Settings, runs: int) -> list[str]:
    """Ask for ``runs`` runs of the catalog's scenarios at the demo repository's HEAD."""
    from agents.catalog import load_catalog
    from agents.workspace import resolve

    names = load_catalog(settings.catalog).names()
    repo_name, repo_path = next(iter(settings.repos.items()))
    head = resolve(Path(repo_path), "HEAD")
    requests = [ev.RunRequested(scenario=names[i % len(names)], repo=repo_name, commit=head,
                                runs=1, purpose="demo", producer="ttfb-up")
                for i in range(runs)]
    asyncio.run(CommandSender(settings).send_all(requests))
    return [r.request_id for r in requests]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"runs": [{"run_id": r["run_id"], "scenario": r["scenario"], "commit": r["commit"],
                      "ttfb_ms": round(float(r["ttfb_ms"]), 3),
                      "components": {k: round(float(v), 3) for k, v in r["components"].items()}}
                     for r in rows]}


def fresh_demo(settings: Settings) -> Settings:
    """The demo's own data directory, emptied, with a new demo repository."""
    import shutil

    from agents.demo_history import write_demo_repo

    data = settings.data_dir / "demo-lab"
    shutil.rmtree(data, ignore_errors=True)
    write_demo_repo(data / "demo" / "repo")
    return settings.model_copy(update={"data_dir": data,
                                       "repos": {"demo": str(data / "demo" / "repo")}})


def _hold(lab: Lab, say: Callable[[str], None]) -> None:
    """Keep the lab (and its dashboard) up until Ctrl-C or SIGTERM."""
    say(f"dashboard: {lab.settings.public_url()} (Ctrl-C to stop)")
    while True:
        lab.check()
        time.sleep(1.0)


def _demo(args: argparse.Namespace, lab: Lab, store: Store, say: Callable[[str], None]) -> int:
    from producers.demo import play

    summary = play(lab.settings, store, lab.check, say)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        say(json.dumps(summary, indent=2))
    if not args.headless:
        _hold(lab, say)
    return 0 if not summary["missed"] and not summary["false_alarms"] else 1


def _runs(args: argparse.Namespace, lab: Lab, store: Store, say: Callable[[str], None]) -> int:
    ids = request_demo_runs(lab.settings, args.runs)
    seen = -1

    def progress(rows: list[dict[str, Any]]) -> None:
        nonlocal seen
        if len(rows) != seen:
            seen = len(rows)
            say(f"runs stored: {seen}/{args.runs}")

    rows = wait_for_runs(lab, store, ids, args.runs, args.timeout, progress)
    if args.json:
        print(json.dumps(_summary(rows[: args.runs]), indent=2))
    else:
        for r in rows:
            say(f"  {r['scenario']:<8} {r['commit'][:10]} ttfb {float(r['ttfb_ms']):8.1f} ms")
    if not args.headless:
        _hold(lab, say)
    return 0


def up_command(args: argparse.Namespace, settings: Settings) -> int:
    home = settings.data_dir
    settings = fresh_demo(settings) if args.demo else ensure_demo_repo(settings)
    lab = Lab(settings, headless=args.headless, home=home)
    say: Callable[[str], None] = (lambda m: print(m, file=sys.stderr)) if args.json else print
    try:
        lab.start()
        say(f"lab up: bus {lab.settings.kafka_bootstrap}, store "
            f"{lab.settings.clickhouse_url or lab.settings.chdb_path}, logs {lab.logs}")
        if not args.headless:
            say(f"dashboard: {lab.settings.public_url()}; JSON API: http://"
                f"{lab.settings.api_host}:{lab.settings.api_port}/api/v1/")
        store = open_store(lab.settings)
        from agents.catalog import load_catalog
        from producers.watch import publish_thresholds

        publish_thresholds(lab.settings, load_catalog(lab.settings.catalog),
                           str(lab.settings.catalog or "the default catalog"))
        return (_demo if args.demo else _runs)(args, lab, store, say)
    except KeyboardInterrupt:
        name = interrupted_by()
        if not args.headless:  # the dashboard was up until stopped: stopping is the way out
            say("stopping the lab")
            return 0
        # a headless run owes a result: without it, say so and fail
        print(f"ttfb up: interrupted by {name} before the result was complete; stopping "
              "the lab", file=sys.stderr)
        return 143 if name == "SIGTERM" else 130
    except (RuntimeError, TimeoutError) as exc:
        print(f"ttfb up: {exc}", file=sys.stderr)
        return 1
    finally:
        lab.stop()


@contextlib.contextmanager
def lab_for(settings: Settings, repos: dict[str, str],
            reuse: bool = True) -> Iterator[tuple[Settings, Store]]:
    """Settings and store of a lab able to run ``repos``: the cluster, the
    embedded lab already running here when its agent runs them, or a fresh
    embedded one of its own. Name a repository with ``repo_name``."""
    if not settings.embedded_bus:
        yield settings.model_copy(update={"repos": {**settings.repos, **repos}}), \
            open_store(settings)
        return
    running = running_lab(settings, repos) if reuse else None
    if running is not None:
        yield running, open_store(running)
        return
    with Lab(settings.model_copy(update={"repos": {**settings.repos, **repos}})) as lab:
        yield lab.settings, open_store(lab.settings)
