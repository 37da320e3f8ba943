"""Planning a backfill of a repository where most commits change no file a
scenario imports (a monorepo): each commit's plan stored and sent on its
own, or those of unaffected commits together (``Watcher.plan_all``: one
store session and one connection to the bus for up to ``PLAN_BATCH``).

The tests' tiny repository (``tests/integration/tinyrepo.py``), then
``--commits`` commits of which one in 50 changes its workflow's code and
the rest a notes file. Both ways plan the same commits on the same embedded
Tansu broker, each into a fresh chDB store, alternating for ``--rounds``;
the scenario's imported files are known, as after a backfill's first
commit. Commits planned per second.

    .venv/bin/python bench/plan.py [--commits 400] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.catalog import load_catalog  # noqa: E402
from producers.watch import Source, Watcher, bus_sender  # noqa: E402
from tests.integration.tinyrepo import commit, make_repo, write_catalog  # noqa: E402
from ttfb.bus import EmbeddedBroker, ensure_topics  # noqa: E402
from ttfb.settings import Settings  # noqa: E402
from ttfb.store import open_store  # noqa: E402


def history(path: Path, commits: int) -> list[str]:
    """The tests' tiny repository, then ``commits`` commits: one in 50
    changes its workflow's code, the rest its notes."""
    make_repo(path, commits=1)
    return [commit(path, f"change {i}", touch="tiny/train.py" if i % 50 == 49 else "NOTES.md")
            for i in range(commits)]


def plan(root: Path, bootstrap: str, repo: Path, commits: list[str], together: bool) -> float:
    settings = Settings(data_dir=Path(tempfile.mkdtemp(dir=root)), kafka_bootstrap=bootstrap,
                        _env_file=None)
    watcher = Watcher(settings=settings, store=open_store(settings),
                      catalog=load_catalog(write_catalog(settings.data_dir / "catalog.toml")),
                      sources=[Source("tiny", str(repo), repo)], branches=["main"],
                      send=bus_sender(settings), say=lambda _: None)
    modules = {"tiny": ["tiny/train.py", "tiny/__init__.py", "tiny/heavy.py"]}
    started = time.perf_counter()
    if together:
        watcher.plan_all(watcher.sources[0], "main", commits, "backfill", modules)
    else:
        for sha in commits:
            watcher.plan(watcher.sources[0], "main", sha, "backfill", modules)
    return len(commits) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        root = Path(tmp)
        commits = history(root / "repo", args.commits)
        asyncio.run(ensure_topics(Settings(kafka_bootstrap=broker.bootstrap, _env_file=None)))
        rates: dict[str, list[float]] = {"one by one": [], "together": []}
        for _ in range(args.rounds):
            for name, together in (("one by one", False), ("together", True)):
                rates[name].append(plan(root, broker.bootstrap, root / "repo", commits, together))
        print(f"{args.commits} commits ({args.commits // 50} change the scenario's code),"
              f" {args.rounds} rounds, commits planned per second:")
        for name, values in rates.items():
            print(f"  {name:<11} " + " ".join(f"{v:8.1f}" for v in values))
        ratio = min(rates["together"]) / max(rates["one by one"])
        print(f"  together / one by one, worst against best: {ratio:.1f}x")


if __name__ == "__main__":
    main()
