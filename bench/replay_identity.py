"""Do two versions of the decision folds decide the same on a lab's events?

Every event a lab stored for the folds (the measurements, detections, bisect
and calibration topics, in the order they occurred) is folded from empty
states by the code at ``--against REV`` (checked out into a temporary
directory) and by this checkout, each in a process of its own. The two
sets of outputs (every command, finding, alert and bisect result, by id,
with every field but the moment it was made) and the final states of every
scenario must be identical; the first differences are printed otherwise.

    .venv/bin/python bench/replay_identity.py DATA_DIR --against REV [--new-type T ...]

``--new-type``: an output type this checkout emits and REV did not (it is
left out of the comparison; every other output must keep its id). Fields
this checkout added to an event or a state (absent at REV) are left out of
the comparison and listed.

DATA_DIR is a lab's data directory (``.ttfb/demo-lab`` after
``ttfb up --demo``); nothing else may hold its store while this reads it.
Exit 0 when identical, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# run inside the tree under test: only names both versions have
FOLD = r"""
import json, sys
from streams.bisect import to_json as book_json
from streams.detection import Policy, to_json as state_json
from streams.rebuild import replay
from ttfb import events as ev

events = [ev.decode(line.encode()) for line in open(sys.argv[1]) if line.strip()]
rebuilt = replay(events, Policy())
with open(sys.argv[2], "w") as out:
    for event_id, output in rebuilt.outputs.items():
        body = json.loads(ev.encode(output))
        body.pop("occurred_at", None)
        out.write(json.dumps(body, sort_keys=True) + "\n")
    for scenario, (state, book) in sorted(rebuilt.states.items()):
        out.write(json.dumps({"state": scenario, "detection": state_json(state),
                              "bisects": book_json(book)}, sort_keys=True) + "\n")
"""


def export(data_dir: Path, path: Path) -> int:
    from streams.rebuild import stored_payloads
    from ttfb.settings import Settings
    from ttfb.store import open_store

    settings = Settings(data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]
    count = 0
    with path.open("w") as out:  # as stored: each version decodes them itself
        for _, payload in stored_payloads(open_store(settings), settings):
            out.write(payload.decode().replace("\n", " ") + "\n")
            count += 1
    return count


def fold(tree: Path, events: Path, result: Path) -> list[str]:
    subprocess.run([sys.executable, "-c", FOLD, str(events), str(result)], cwd=tree,
                   env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=True)
    return result.read_text().splitlines()


def _shared(new: object, old: object, added: set[str], path: str) -> object:
    """``new`` without the keys ``old`` lacks, at every depth (named in ``added``)."""
    if isinstance(new, dict) and isinstance(old, dict):
        for key in set(new) - set(old):
            added.add(f"{path}{key}")
        return {k: _shared(v, old[k], added, f"{path}{k}.") for k, v in new.items() if k in old}
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [_shared(n, o, added, path) for n, o in zip(new, old, strict=True)]
    return new


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--against", required=True, help="the revision to compare with")
    parser.add_argument("--new-type", action="append", default=[],
                        help="an output type only this checkout emits (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        count = export(args.data_dir, work / "events.jsonl")
        old_tree = work / "old"
        old_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.against],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
        old = fold(old_tree, work / "events.jsonl", work / "old.jsonl")
        new = [line for line in fold(ROOT, work / "events.jsonl", work / "new.jsonl")
               if json.loads(line).get("type") not in args.new_type]
    added: set[str] = set()
    if len(old) == len(new):
        new = [json.dumps(_shared(json.loads(n), json.loads(o), added, ""), sort_keys=True)
               for o, n in zip(old, new, strict=True)]
        old = [json.dumps(json.loads(o), sort_keys=True) for o in old]
    if added:
        print(f"fields only this checkout has, left out: {', '.join(sorted(added))}")
    states = sum(1 for line in new if "state" in json.loads(line))
    outputs = len(new) - states
    print(f"{count} stored events; {outputs} outputs and "
          f"{states} scenario states from this checkout, "
          f"{len(old)} lines from {args.against}")
    if old == new:
        print("identical: every output and every final state")
        return 0
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b]
    print(f"DIFFERENT: {len(differ)} lines differ, {abs(len(old) - len(new))} more on one side")
    for i, a, b in differ[:3]:
        print(f"line {i}:\n  {args.against}: {a[:400]}\n  now: {b[:400]}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
