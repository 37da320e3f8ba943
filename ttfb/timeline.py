"""The zero-code launcher's timeline (``ttfb.launcher``): the intervals its
hooks saw and the moments that split a run into TTFB's components.

Standard library only: it loads into the measured workflow's process."""

from __future__ import annotations

import time

clock = time.monotonic_ns


class Timeline:
    """Intervals the hooks saw, and the moments that split the run."""

    def __init__(self) -> None:
        self.start = clock()
        self.imports: list[tuple[int, int]] = []
        self.model: list[tuple[int, int]] = []
        self.data_start: int | None = None
        self.batch_end: int | None = None
        self.step_start: int | None = None
        self.step_end: int | None = None
        self.forward_end: int | None = None
        self.backward_end: int | None = None
        self.optimizers = 0  # torch.optim optimizers constructed so far
        self.loaders = 0  # DataLoaders constructed so far
        self.no_grad_calls = 0  # top-level module calls without gradients before the step
        self.depth = {"import": 0, "model": 0, "forward": 0}

    def components(self) -> dict[str, float]:
        end = self.step_start or clock()

        def inside(spans: list[tuple[int, int]], lo: int, hi: int) -> int:
            return sum(max(0, min(b, hi) - max(a, lo)) for a, b in spans)

        data_start = self.data_start or self._last_span_end(end)
        imports = inside(self.imports, self.start, end)
        model = inside(self.model, self.start, end)
        config = (data_start - self.start) - inside(self.imports, self.start, data_start) \
            - inside(self.model, self.start, data_start)
        data = (end - data_start) - inside(self.imports, data_start, end) \
            - inside(self.model, data_start, end)
        step = (self.step_end or self.backward_end or self.forward_end or clock()) - end
        ms = {"imports": imports, "config": config, "data": data, "model": model,
              "first_step": step}
        return {k: max(v, 0) / 1e6 for k, v in ms.items()}

    def _last_span_end(self, before: int) -> int:
        ends = [b for _, b in self.imports + self.model if b <= before]
        return max(ends, default=self.start)
