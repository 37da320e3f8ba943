"""Zero-code-change mode: measure an unmodified PyTorch training script.

The launcher runs the script as ``__main__`` with hooks that need no change to
it, and stops it right after its first training step, whatever idioms the
script uses (a ``DataLoader`` or hand-made batches, ``torch.optim`` or a
hand-written update, a trainer that steps through a closure):

* imports: time inside outermost ``import`` statements that load a module
  (or fail);
* model: time inside outermost ``nn.Module`` construction, ``.to()``/``.cuda()``
  and optimizer construction;
* data: from the first ``Dataset``/``DataLoader`` construction or the first
  read of a data file, whichever comes first (a file the script opens for
  reading that is neither code, configuration nor a checkpoint, outside the
  interpreter's own tree and outside import and model spans), else from the
  end of the last import or model span, until the first step starts, less
  imports and model time: an evaluation before the first step is data;
* config: everything else before data starts (argument parsing, set-up);
* first_step: from the first top-level module call with gradients enabled
  and a tensor argument (after the first batch, when a ``DataLoader`` is
  used) to the end of the first ``optimizer.step()``; with no optimizer, to
  the end of the first backward or, where the script updates the weights by
  hand after ``torch.autograd.grad``, to the start of the next step's forward.

A script that reaches no such step is stopped at ``TTFB_STEP_LIMIT_S``
seconds (when set) with a message that says so, and one that ends without a
step is reported as such: neither counts as a measurement.

Standard library only at import; torch hooks are installed when the script
imports torch.
"""

from __future__ import annotations

import builtins
import functools
import os
import runpy
import sys
from collections.abc import Callable
from typing import Any

from ttfb.timeline import Timeline, clock

TIMELINE = Timeline()


class FirstStepDone(BaseException):
    """Raised to stop the script once the first step is measured."""


# how a run stopped at its step limit says so (``ttfb init`` reads it)
NO_STEP = "reached no training step"


class NoStepInTime(BaseException):
    """Raised to stop a script that reached no training step within the limit."""


def _done(at: int | None = None) -> None:
    """End the first step now (or at ``at``) and stop the script."""
    TIMELINE.step_end = at or clock()
    raise FirstStepDone


def _has_tensor(args: tuple[Any, ...], kwargs: dict[str, Any], tensor: type) -> bool:
    values = [*args, *kwargs.values()]
    for value in list(values):
        if isinstance(value, (list, tuple)):
            values.extend(value)
        elif isinstance(value, dict):
            values.extend(value.values())
    return any(isinstance(v, tensor) for v in values)


# a profiled run's ``-X importtime`` log says which of its imports were
# imports time: lines of ours mark where model spans begin and end and where
# the step begins (``agents.explain`` reads them). The setting is the
# process's from its start: read once, not at every model span
IMPORTTIME_MARK = "import time: ttfb-lab "
_IMPORTTIME = bool(os.environ.get("PYTHONPROFILEIMPORTTIME"))


def _mark(what: str) -> None:
    if _IMPORTTIME:
        os.write(2, f"{IMPORTTIME_MARK}{what}\n".encode())


def _span(kind: str, attr: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            depth = TIMELINE.depth
            # time belongs to the outermost category: a lazy import inside
            # optimizer construction is model time, not imports
            if depth["import"] or depth["model"] or TIMELINE.step_start is not None:
                return func(*args, **kwargs)
            depth[kind] += 1
            if kind == "model":
                _mark("model begins")
            loaded = len(sys.modules)
            # an import of a module already loaded (``import math`` in a
            # function body) is no import span: its end would mark where data
            # starts, and an evaluation before the first step would count as
            # config. One that fails has searched the path: it is one
            kept = kind != "import"
            begin = clock()
            try:
                return func(*args, **kwargs)
            except BaseException:
                kept = True
                raise
            finally:
                if kept or len(sys.modules) > loaded:
                    getattr(TIMELINE, attr).append((begin, clock()))
                depth[kind] -= 1
                if kind == "model":
                    _mark("model ends")
        inner.__ttfb_wrapped__ = True  # type: ignore[attr-defined]
        return inner
    return wrap


_original_import = builtins.__import__
_torch_hooked = False


@_span("import", "imports")
def _timed_import(*args: Any, **kwargs: Any) -> Any:
    return _original_import(*args, **kwargs)


def _import(*args: Any, **kwargs: Any) -> Any:
    module = _timed_import(*args, **kwargs)
    if not _torch_hooked and TIMELINE.depth["import"] == 0 and "torch.nn" in sys.modules:
        _hook_torch()
    return module


def _wrap_init(cls: type) -> None:
    init = cls.__dict__.get("__init__")
    if init is not None and not getattr(init, "__ttfb_wrapped__", False):
        cls.__init__ = _span("model", "model")(init)  # type: ignore[misc]


def _mark_data(cls: type) -> None:
    init = cls.__dict__.get("__init__")
    if init is None or getattr(init, "__ttfb_data__", False):
        return

    @functools.wraps(init)
    def inner(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if TIMELINE.data_start is None:
            TIMELINE.data_start = clock()
        return init(self, *args, **kwargs)
    inner.__ttfb_data__ = True  # type: ignore[attr-defined]
    cls.__init__ = inner  # type: ignore[misc]


# what a script reads that is not its data: code, configuration, checkpoints
NOT_DATA = frozenset((".py", ".pyc", ".pyi", ".so", ".yaml", ".yml", ".json", ".toml", ".cfg",
                      ".ini", ".conf", ".env", ".pt", ".pth", ".ckpt", ".safetensors"))


def _data_read(file: Any, mode: str) -> bool:
    """Whether opening ``file`` with ``mode`` reads the script's data."""
    import os

    if not isinstance(file, (str, bytes, os.PathLike)) or set(mode) & set("wax+"):
        return False
    path = os.path.abspath(os.fsdecode(file))
    if os.path.splitext(path)[1].lower() in NOT_DATA:
        return False
    return not any(path.startswith(os.path.join(prefix, ""))
                   for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix})


def _hook_open() -> None:
    """Data starts at the first read of a data file (``_data_read``) where no
    ``Dataset`` came first: a corpus tokenized by hand, an array read by
    ``numpy``. ``io.open`` too: ``from io import open`` and ``pathlib`` use it."""
    import io

    original = io.open

    @functools.wraps(original)
    def opened(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        t = TIMELINE
        if t.data_start is None and t.step_start is None and not t.depth["import"] \
                and not t.depth["model"] and _data_read(file, mode):
            t.data_start = clock()
        return original(file, mode, *args, **kwargs)
    builtins.open = io.open = opened


def _on_subclass(base: type, hook: Any) -> None:
    """Call ``hook(cls)`` for every subclass of ``base`` defined from now on."""
    own = base.__dict__.get("__init_subclass__")

    def init_subclass(cls: type, /, **kwargs: Any) -> None:
        if isinstance(own, classmethod):
            own.__func__(cls, **kwargs)
        else:
            super(base, cls).__init_subclass__(**kwargs)  # type: ignore[arg-type]
        hook(cls)
    base.__init_subclass__ = classmethod(init_subclass)  # type: ignore[assignment]


def _hook_torch() -> None:  # noqa: C901 - one hook per torch entry point
    global _torch_hooked
    _torch_hooked = True
    import torch
    from torch import nn
    from torch.utils import data as tud
    from torch.utils.data import dataloader

    def subclasses(root: type) -> list[type]:
        seen, todo = [], [root]
        while todo:
            cls = todo.pop()
            seen.append(cls)
            todo.extend(cls.__subclasses__())
        return seen

    for cls in subclasses(nn.Module):
        _wrap_init(cls)
    for cls in subclasses(torch.optim.Optimizer):
        _wrap_init(cls)
    _count(torch.optim.Optimizer, "optimizers")
    _count(tud.DataLoader, "loaders")
    for cls in subclasses(tud.Dataset) + [tud.DataLoader]:
        _mark_data(cls)

    _on_subclass(nn.Module, _wrap_init)
    _on_subclass(tud.Dataset, _mark_data)

    for name in ("to", "cuda"):
        setattr(nn.Module, name, _span("model", "model")(getattr(nn.Module, name)))

    fetch = dataloader._BaseDataLoaderIter.__next__

    def first_fetch(self):  # type: ignore[no-untyped-def]
        batch = fetch(self)
        if TIMELINE.batch_end is None:
            TIMELINE.batch_end = clock()
        return batch
    dataloader._BaseDataLoaderIter.__next__ = first_fetch  # type: ignore[method-assign]

    call = nn.Module.__call__

    def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        depth = TIMELINE.depth
        outer = depth["forward"] == 0 and torch.is_grad_enabled()
        if outer and TIMELINE.backward_end is not None and TIMELINE.step_end is None \
                and not TIMELINE.optimizers:
            # no optimizer: the next step's forward ends the hand-written update (with
            # one, its step() does: LBFGS and gradient accumulation run several forwards)
            _done()
        # a training step: gradients on, a tensor in (not acting or evaluating
        # under no_grad), after the first batch where a DataLoader gives them
        top = outer and TIMELINE.step_start is None and bool(TIMELINE.model) and \
            (TIMELINE.batch_end is not None or not TIMELINE.loaders) and \
            _has_tensor(args, kwargs, torch.Tensor)
        if top:
            TIMELINE.step_start = clock()
            _mark("step begins")
        elif depth["forward"] == 0 and TIMELINE.step_start is None and not torch.is_grad_enabled():
            TIMELINE.no_grad_calls += 1
        depth["forward"] += 1
        try:
            return call(self, *args, **kwargs)
        finally:
            depth["forward"] -= 1
            if top:
                TIMELINE.forward_end = clock()
    nn.Module.__call__ = forward  # type: ignore[method-assign]

    backward = torch.autograd.backward

    def first_backward(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = backward(*args, **kwargs)
        if TIMELINE.step_start is not None and TIMELINE.backward_end is None:
            TIMELINE.backward_end = clock()
            if not TIMELINE.optimizers:  # nothing will call step(): the step ends here
                _done(TIMELINE.backward_end)
        return result
    torch.autograd.backward = first_backward  # Tensor.backward calls it by this name

    grad = torch.autograd.grad

    def first_grad(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = grad(*args, **kwargs)
        if TIMELINE.step_start is not None and TIMELINE.backward_end is None:
            TIMELINE.backward_end = clock()  # the update follows by hand: ends at the next step
        return result
    torch.autograd.grad = first_grad

    def after_step(optimizer, args, kwargs):  # type: ignore[no-untyped-def]
        if TIMELINE.step_start is not None and TIMELINE.step_end is None:
            if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
                torch.cuda.synchronize()
            _done()
    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(after_step)


def _count(base: type, attr: str) -> None:
    """Count instances of ``base`` as they are built: where a step starts and
    ends depends on whether there is a DataLoader and an optimizer."""
    init = base.__init__  # type: ignore[misc]

    @functools.wraps(init)
    def inner(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        setattr(TIMELINE, attr, getattr(TIMELINE, attr) + 1)
        return init(self, *args, **kwargs)
    base.__init__ = inner  # type: ignore[misc]


def _limit(seconds: float) -> None:
    """Stop the script with ``NoStepInTime`` after ``seconds`` (main thread, POSIX)."""
    import signal

    def expire(signum: int, frame: Any) -> None:
        if TIMELINE.step_start is None or TIMELINE.step_end is None:
            raise NoStepInTime
    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def run_script(path: str, args: list[str], module: str = "") -> dict[str, float]:
    """Run ``path`` as ``__main__`` until its first step (as ``python -m
    module`` with ``module``: its package imported first); returns ms."""
    import os

    TIMELINE.__init__()  # type: ignore[misc]  # reset in place: the hooks hold this object
    builtins.__import__ = _import
    _hook_open()
    if "torch.nn" in sys.modules:
        _hook_torch()
    sys.argv = [path, *args]
    limit = float(os.environ.get("TTFB_STEP_LIMIT_S") or 0)
    if limit > 0:
        _limit(limit)
    try:
        if module:
            __import__(module.rpartition(".")[0])  # through the hook: import time
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(path, run_name="__main__")
    except FirstStepDone:
        pass
    except NoStepInTime:
        evaluated = TIMELINE.no_grad_calls
        raise RuntimeError(
            f"the script {NO_STEP} within {limit:.0f}s (a forward pass with "
            "gradients followed by a backward or an optimizer step) and was stopped"
            + (f"; it had made {evaluated} model call(s) without gradients, an evaluation "
               "before training? (make it shorter: its iterations or batches)"
               if evaluated else "")
            + "; shrink its arguments, or give the scenario a longer timeout_s") from None
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    finally:
        builtins.__import__ = _original_import
        if limit > 0:
            import signal

            signal.setitimer(signal.ITIMER_REAL, 0)
    if TIMELINE.step_start is None:
        raise RuntimeError("the script ended without a training step the lab recognises (a "
                           "forward pass with gradients enabled and a tensor input): nothing "
                           "to measure")
    return TIMELINE.components()
