"""Explaining a regression: import times and profiles of one good and one bad run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agents.explain import summarise_imports
from streams.bisect import Bisect, grown
from streams.bisect.state import record
from ttfb import events as ev


def importtime(tmp_path: Path, code: str) -> Path:
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], check=True,
                         capture_output=True, text=True).stderr
    out = tmp_path / "imports.txt"
    out.write_text(err)
    return out


def commit_file(repo: Path, rel: str, text: str) -> str:
    """Write ``rel`` in ``repo`` and commit it; returns the sha."""
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text)
    for args in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t",
                                 "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_import_times_are_read_from_a_real_importtime_log(tmp_path: Path) -> None:
    good = summarise_imports(importtime(tmp_path, "import json"))
    bad = summarise_imports(importtime(tmp_path, "import json, email.mime.text"))
    assert "json" in good and "email.mime.text" not in good
    # a package's cumulative time includes the modules it imports
    assert bad["email.mime.text"] >= bad.get("email.mime.base", 0.0) > 0
    grew = [g["name"] for g in grown(good, bad, top=5)]
    assert grew[0] == "email.mime.text"


def test_an_imports_bisect_explains_with_modules_other_components_with_functions() -> None:
    profile = {"cumulative_ms": {"train.py:10:main": 900.0},
               "imports_ms": {"scipy.interpolate": 640.0}}
    for component, expected in (("imports", {"scipy.interpolate": 640.0}),
                                ("config", {"train.py:10:main": 900.0})):
        b = Bisect(bisect_id="b", detection_id="d", scenario="vision", component=component,
                   repo="demo", branch="main", good="g", bad="k")
        record(b, ev.RunCompleted(repo="demo", scenario="vision", commit="k", purpose="explain",
                                   ttfb_ms=1.0, components={"imports": 1.0},
                                   profile=profile))
        assert b.profiles["k"] == expected


def _profiled(b: Bisect, commit: str, times: dict[str, float], repository: list[str],
              changed: list[str]) -> None:
    record(b, ev.RunCompleted(repo="demo", scenario="recsys", commit=commit, purpose="explain",
                               ttfb_ms=1.0, components={"data": 1.0},
                               profile={"cumulative_ms": times, "repository": repository,
                                        "changed": changed}))


def test_what_grew_puts_the_changed_files_first_and_drops_what_one_run_loaded_lazily() -> None:
    """Two profiled runs a side: a torch internal that one culprit run
    happened to import lazily (0.9 s) counts at its least over the side (0),
    and the changed function ranks above the enclosing ``main`` of the
    repository and above a library frame that grew more."""
    from streams.bisect.verdict import explain

    b = Bisect(bisect_id="b", detection_id="d", scenario="recsys", component="data",
               repo="demo", branch="main", good="g", bad="k", commits=["g", "p", "k"],
               culprits=[2])
    base = {"train.py:1:main": 1000.0, "features.py:74:build_dataset": 100.0,
            "json/decoder.py:343:raw_decode": 50.0}
    ours = ["train.py:1:main", "features.py:74:build_dataset"]
    for extra in (0.0, 30.0):
        _profiled(b, "p", {k: v + extra for k, v in base.items()}, ours, [])
    grew = {"train.py:1:main": 2000.0, "features.py:74:build_dataset": 1015.0,
            "json/decoder.py:343:raw_decode": 1040.0}
    _profiled(b, "k", {**grew, "_flat_param.py:1:<module>": 900.0}, ours,
              ["features.py:74:build_dataset"])
    _profiled(b, "k", {k: v + 20 for k, v in grew.items()}, ours,
              ["features.py:74:build_dataset"])
    rows = explain(b, "p", "k")
    assert [(r["name"], r["where"]) for r in rows[:3]] == [
        ("features.py:74:build_dataset", "changed"), ("train.py:1:main", "repository"),
        ("json/decoder.py:343:raw_decode", "")]
    assert rows[0]["delta_ms"] == 915.0  # least of each side: 1015 - 100
    assert "_flat_param.py:1:<module>" not in {r["name"] for r in rows}
    # an improvement lists what shrank, the changed files first too
    b.direction = "improvement"
    b.profile_runs = {"p": b.profile_runs["k"], "k": b.profile_runs["p"]}
    shrank = explain(b, "p", "k")
    assert shrank[0]["name"] == "features.py:74:build_dataset"
    assert shrank[0]["delta_ms"] == -915.0 and shrank[0]["good_ms"] > shrank[0]["bad_ms"]


def test_a_change_that_grew_nothing_material_does_not_lead() -> None:
    """A changed file's frame that grew by noise (under 5 % of the largest
    growth) ranks after the entries that grew materially."""
    top = grown({"a.py:1:f": 10.0, "lib.py:1:g": 10.0}, {"a.py:1:f": 10.5, "lib.py:1:g": 500.0},
                changed=["a.py:1:f"])
    assert [r["name"] for r in top] == ["lib.py:1:g", "a.py:1:f"]


def test_equal_growths_are_listed_in_the_same_order_whatever_order_the_profile_came_in() -> None:
    """The profile's names come in a set's order, which differs from one
    process to the next; a replay must explain a culprit as the lab did."""
    names = [f"m{i}.py:1:<module>" for i in range(6)]
    good = dict.fromkeys(names, 1.0)
    orders = [grown(good, {n: 1.002 for n in order})
              for order in (names, names[::-1], names[3:] + names[:3])]
    assert [[r["name"] for r in top] for top in orders] == [sorted(names)] * 3


def test_an_import_regression_lists_what_the_change_pulled_in_before_a_stalled_import() -> None:
    """Of an imports bisect, the modules only the culprit imports follow its
    changed module, even where one run stalled in a module both sides import
    and grew it, and every package above it, far more; an improvement lists
    the modules it stopped importing as dropped. A component timed by
    function keeps growth order."""
    from streams.bisect.verdict import explain

    stall = 6_000.0  # scipy._lib's 120 ms is under 5 % of it
    shared = {"torch": 1000.0, "torch._dynamo": 600.0, "torch.fx": 300.0, "torch._C": 200.0}
    good = {**shared, "helpers": 1.0}
    chain = {k: v + stall for k, v in shared.items()}  # the stall and its ancestors
    bad = {**chain, "helpers": 481.0,
           "scipy.ndimage": 478.0, "scipy._lib": 120.0}

    def bisect(component: str, direction: str) -> Bisect:
        b = Bisect(bisect_id="b", detection_id="d", scenario="s", component=component,
                   repo="demo", branch="main", good="g", bad="k", commits=["g", "p", "k"],
                   culprits=[2], direction=direction)
        key = "imports_ms" if component == "imports" else "cumulative_ms"
        for commit, times in (("p", good), ("k", bad)) if direction == "regression" else \
                (("p", bad), ("k", good)):
            record(b, ev.RunCompleted(
                repo="demo", scenario="s", commit=commit, purpose="explain", ttfb_ms=1.0,
                components={component: 1.0},
                profile={key: times, "repository": ["helpers"],
                         "changed": ["helpers"] if commit == "k" else []}))
        return b

    rows = explain(bisect("imports", "regression"), "p", "k")
    assert [(r["name"], r["where"]) for r in rows[:3]] == [
        ("helpers", "changed"), ("scipy.ndimage", "new"), ("scipy._lib", "new")]
    shrank = explain(bisect("imports", "improvement"), "p", "k")
    assert [(r["name"], r["where"]) for r in shrank[1:3]] == [
        ("scipy.ndimage", "dropped"), ("scipy._lib", "dropped")]
    assert shrank[1]["delta_ms"] == -478.0
    by_function = explain(bisect("data", "regression"), "p", "k")
    assert by_function[0]["name"] == "helpers"
    assert {r["name"] for r in by_function[1:5]} == set(shared)  # by growth, scipy's after
    assert {r["where"] for r in by_function} <= {"changed", "repository", ""}


def test_a_commit_touches_the_functions_its_changed_lines_fall_in(tmp_path: Path) -> None:
    """Frames are named as a profile names them (file, first line, function):
    the innermost function around each changed line (a decorator's line is
    the function's first), and the comprehension it is in, module-level
    code as ``<module>`` at line 1."""
    from agents.explain import touched_functions
    from agents.workspace import changed_lines

    def commit(text: str) -> str:
        return commit_file(tmp_path, "pkg/features.py", text)

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    before = ("import json\n\n\ndef to_arrays(records):\n    return list(records)\n\n\n"
              "def build_dataset(path):\n    def inner(x):\n        return x\n"
              "    return to_arrays(json.load(open(path)))\n")
    commit(before)
    after = before.replace("    return list(records)\n",
                           "    key = repr(records)\n    return [r for r in records]\n")
    after = after.replace("        return x\n", "        return x + 1\n")
    sha = commit("import functools\n" + after.replace("def build_dataset", "@functools.cache\n"
                                                     "def build_dataset"))
    lines = changed_lines(tmp_path, sha)
    assert set(lines) == {"pkg/features.py"}
    touched = touched_functions(tmp_path, lines)
    # the import, lines in to_arrays (one of them a comprehension, a code
    # object of its own), the decorator added to build_dataset (its first
    # line now), a line of the function nested in it
    assert touched == {("pkg/features.py", 1, "<module>"), ("pkg/features.py", 5, "to_arrays"),
                       ("pkg/features.py", 7, "<listcomp>"),
                       ("pkg/features.py", 10, "build_dataset"),
                       ("pkg/features.py", 12, "inner")}, touched


def test_a_pull_requests_changes_are_all_its_commits_code_lines(tmp_path: Path) -> None:
    """A profiled run of a pull request's head marks what every commit since
    the base changed; a line left blank, only a comment or in a docstring
    changes no code, nor does a file's new layout (as test selection judges
    a commit): such a file is not among the changed ones."""
    from agents.explain import code_lines, touched_functions
    from agents.workspace import changed_lines

    def commit(text: str) -> str:
        return commit_file(tmp_path, "model.py", text)

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    body = "import torch\n\n\ndef build(n):\n    return torch.zeros(n)\n"
    base = commit(body)
    commit(body.replace("torch.zeros(n)", "torch.randn(n)"))  # the change
    head = commit("# models\n" + body.replace("torch.zeros(n)", "torch.randn(n)"))
    assert changed_lines(tmp_path, head) == {}  # the head alone: a comment, no code
    lines = changed_lines(tmp_path, head, since=base)
    assert lines == {"model.py": {1, 6}}
    assert code_lines(tmp_path, lines) == {"model.py": {6}}
    assert touched_functions(tmp_path, code_lines(tmp_path, lines)) == {("model.py", 5, "build")}
    documented = commit("# models\n" + body.replace("torch.zeros(n)", "torch.randn(n)")
                        .replace("def build(n):\n", 'def build(n):\n    """Noise."""\n'))
    assert changed_lines(tmp_path, documented) == {}  # a docstring
    reformatted = commit("# models\n" + body.replace("torch.zeros(n)", "torch.randn( n )")
                         .replace("def build(n):\n", 'def build(n):\n    """Noise."""\n'))
    assert code_lines(tmp_path, {"model.py": {7}}) == {"model.py": {7}}  # a line of code
    assert changed_lines(tmp_path, reformatted) == {}  # whose code is what it was
    assert changed_lines(tmp_path, reformatted, since=base) == {"model.py": {1, 6, 7}}


def test_a_profile_that_cannot_be_read_keeps_its_run(tmp_path: Path) -> None:
    """The bisect waits for each explain run: one whose profile dump is
    unreadable still comes back, with the reason in place of the profile."""
    from agents.agent import Agent, AgentConfig
    from agents.catalog import Catalog
    from agents.runner import RunOutcome
    from agents.workspace import Workspaces
    from ttfb.signing import Verifier

    agent = Agent(AgentConfig(repos={}, catalog=Catalog(scenarios={}),
                              workspaces=Workspaces(tmp_path / "ws"), verifier=Verifier("k")),
                  emitter=None)  # type: ignore[arg-type]
    dump = tmp_path / "c.prof"
    dump.write_bytes(b"not a profile")
    events = agent._events(RunOutcome(status="completed", components={"imports": 1.0}),
                           {"scenario": "s", "repo": "r", "commit": "c", "purpose": "explain"},
                           "", "", str(dump), tmp_path, {})
    done = [e for e in events if isinstance(e, ev.RunCompleted)]
    assert len(done) == 1 and "profile unreadable" in done[0].profile["error"]
    assert not dump.exists()  # removed all the same


def test_a_side_s_unreadable_profile_does_not_zero_the_others() -> None:
    from streams.bisect.verdict import explain

    b = Bisect(bisect_id="b", detection_id="d", scenario="recsys", component="data",
               repo="demo", branch="main", good="g", bad="k", commits=["g", "p", "k"],
               culprits=[2])
    _profiled(b, "p", {"features.py:32:to_arrays": 10.0}, [], [])
    _profiled(b, "k", {"features.py:32:to_arrays": 510.0}, [], ["features.py:32:to_arrays"])
    record(b, ev.RunCompleted(repo="demo", scenario="recsys", commit="k", purpose="explain",
                               ttfb_ms=1.0, components={"data": 1.0},
                               profile={"error": "profile unreadable: bad marshal data"}))
    assert b.explained == {"p": 1, "k": 2}
    assert [(r["name"], r["delta_ms"]) for r in explain(b, "p", "k")] == \
        [("features.py:32:to_arrays", 500.0)]


def test_functions_a_change_moved_down_its_file_are_not_taken_for_new() -> None:
    """nanoGPT's model.py with four lines added to ``GPT.__init__``: every
    function below them moves four lines down, which must not make
    ``configure_optimizers`` or ``forward`` read as new (from 0 ms) beside
    the function that grew; the four ``__init__`` of the file pair up in
    order."""
    from streams.bisect.verdict import explain

    inits = {"model.py:31:__init__": 5.0, "model.py:79:__init__": 3.0,
             "model.py:94:__init__": 8.0}
    good = {**inits, "model.py:120:__init__": 128.0, "model.py:170:forward": 575.0,
            "model.py:263:configure_optimizers": 1650.0, "train.py:1:<module>": 4000.0}
    bad = {**inits, "model.py:120:__init__": 235.0, "model.py:174:forward": 577.0,
           "model.py:267:configure_optimizers": 1649.0, "train.py:1:<module>": 4107.0}
    b = Bisect(bisect_id="b", detection_id="d", scenario="s", component="model",
               repo="demo", branch="main", good="g", bad="k", commits=["g", "p", "k"],
               culprits=[2])
    for commit, times in (("p", good), ("k", bad)):
        record(b, ev.RunCompleted(
            repo="demo", scenario="s", commit=commit, purpose="explain", ttfb_ms=1.0,
            components={"model": 1.0},
            profile={"cumulative_ms": times, "repository": list(times),
                     "changed": ["model.py:120:__init__"] if commit == "k" else []}))
    rows = explain(b, "p", "k")
    assert [(r["name"], r["where"]) for r in rows] == [
        ("model.py:120:__init__", "changed"), ("train.py:1:<module>", "repository"),
        ("model.py:174:forward", "repository")]
    assert rows[0]["delta_ms"] == 107.0


def test_functions_below_a_class_the_change_added_keep_their_names() -> None:
    """A change that adds a module class above ``GPT`` adds an ``__init__``
    and a ``forward`` to the file: the file's other ``__init__`` and
    ``forward`` are paired by how far ``configure_optimizers`` moved, and
    only the new class's functions read as new."""
    from streams.bisect.verdict import aligned

    good = {"model.py:31:__init__": 5.0, "model.py:40:forward": 50.0,
            "model.py:120:__init__": 128.0, "model.py:170:forward": 575.0,
            "model.py:263:configure_optimizers": 1650.0}
    bad = {"model.py:31:__init__": 5.0, "model.py:40:forward": 50.0,
           "model.py:110:__init__": 90.0, "model.py:115:forward": 60.0,
           "model.py:132:__init__": 128.0, "model.py:182:forward": 575.0,
           "model.py:275:configure_optimizers": 1650.0}
    assert aligned(good, bad) == {
        "model.py:31:__init__": 5.0, "model.py:40:forward": 50.0,
        "model.py:132:__init__": 128.0, "model.py:182:forward": 575.0,
        "model.py:275:configure_optimizers": 1650.0}


def test_a_profile_names_the_files_the_commit_changed_that_the_run_read(tmp_path: Path) -> None:
    """A config the run reads (executed as ``<string>``: no frame of its
    own in what grew) is named; a file outside what the run imported or
    read, and one whose edit is a comment, are not."""
    import cProfile

    from agents.explain import summarise
    from agents.workspace import changed_lines

    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    commit_file(repo, "train.py", "import m\n")
    commit_file(repo, "m.py", "def f(x):\n    return x + 1\n")
    commit_file(repo, "config/small.py", "n_layer = 6\n")
    (repo / "m.py").write_text("def f(x):\n    # add one\n    return x + 1\n")
    (repo / "README.md").write_text("deeper\n")
    culprit = commit_file(repo, "config/small.py", "n_layer = 12\n")
    dump = tmp_path / "run.prof"
    profiler = cProfile.Profile()
    profiler.runcall(exec, (repo / "config/small.py").read_text(), {})
    profiler.dump_stats(dump)
    changed = changed_lines(repo, culprit)
    assert set(changed) == {"config/small.py", "README.md"}  # m.py: a comment, no code
    changed["m.py"] = {2}  # were it listed, the comment line still counts for nothing
    read = ["train.py", "m.py", "config/small.py"]
    assert summarise(dump, repo, changed, read)["changed_files"] == ["config/small.py"]
    assert summarise(dump, repo, changed, ["train.py", "m.py"])["changed_files"] == []


def test_the_result_and_its_alert_name_the_files_the_culprit_changed() -> None:
    """What the culprit's profiled runs say it changed, not its parent's,
    reaches the bisect's result and the alert that names the culprit."""
    from streams.bisect.verdict import attributed_alert, completed
    from streams.notify import details

    b = Bisect(bisect_id="b", detection_id="d", scenario="lm", component="model",
               repo="demo", branch="main", good="g", bad="k", commits=["g", "p", "k"],
               authors=["A", "B", "C"], subjects=["x", "y", "deeper"], culprits=[2])
    for commit, files in (("p", ["data.py"]), ("k", ["config/small.py"]),
                          ("k", ["config/small.py", "model.py"])):
        record(b, ev.RunCompleted(repo="demo", scenario="lm", commit=commit, purpose="explain",
                                  ttfb_ms=1.0, components={"model": 1.0},
                                  profile={"cumulative_ms": {"train.py:1:<module>": 1.0},
                                           "changed_files": files}))
    done = completed(b)
    assert done.changed_files == ["config/small.py", "model.py"]
    lines = details(attributed_alert(done, "http://127.0.0.1:8501"))
    assert "it changed what lm imports or reads: config/small.py, model.py" in lines


def test_a_script_s_imports_are_those_its_imports_time_holds(tmp_path: Path) -> None:
    """A profiled run of a script marks, in its ``-X importtime`` log, which
    imports its ``imports`` time holds: a module imported inside model
    construction (an optimizer's lazy import of its compiler) is model time
    and is left out of the imports it is explained by; one the script
    imports at its top is in. An eager import of what model construction
    used to import lazily then reads as a module the imports gained."""
    import os

    from agents.explain import import_times, summarise
    from ttfb.launcher import IMPORTTIME_MARK

    (tmp_path / "train.py").write_text(
        "import email.mime.text\n"
        "import torch\n\n\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        import xml.dom.minidom  # lazily, while the model is built\n"
        "        self.fc = torch.nn.Linear(4, 1)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n\n\n"
        "net = Net()\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
        "net(torch.ones(2, 4)).sum().backward()\n"
        "opt.step()\n")
    profile = tmp_path / "run.prof"
    subprocess.run([sys.executable, "-m", "ttfb.harness", "--script", "train.py", "--root",
                    str(tmp_path), "--profile", str(profile)], cwd=tmp_path, check=True,
                   capture_output=True, env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
                   timeout=120)
    log = Path(str(profile) + ".imports")
    text = log.read_text()
    assert f"{IMPORTTIME_MARK}model begins" in text and f"{IMPORTTIME_MARK}step begins" in text
    assert "xml.dom.minidom" in text  # imported, but while the model was built
    counted = import_times(log)
    assert "email.mime.text" in counted and "torch" in counted
    assert "xml.dom.minidom" not in counted
    # the script runs as __main__, imported by nobody: what its run paid in
    # imports stands for it, changed where the commit changed the script;
    # otherwise the modules it imports say what grew, and it is one more entry
    changed = summarise(profile, tmp_path, {"train.py": {1}}, ["train.py"], script="train.py")
    own = changed["imports_ms"]["train.py (its imports)"]
    assert own >= counted["torch"] + counted["email.mime.text"]
    assert "train.py (its imports)" in changed["changed"]
    other = summarise(profile, tmp_path, {"helpers.py": {1}}, ["train.py"], script="train.py")
    assert other["imports_ms"]["train.py (its imports)"] == own
    assert "train.py (its imports)" not in other["repository"] + other["changed"]
