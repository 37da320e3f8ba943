"""The bisect's statistical reading of its runs (``ttfb.stats.changepoint``):
the posterior over the culprit's position, and steps between commits."""

from __future__ import annotations

import math

import numpy as np

from streams.bisect.state import Bisect
from ttfb.stats.changepoint import Contrast, block_contrasts, step_posterior


def search_cells(b: Bisect, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of commits ``first``..``last`` (a search's, endpoints included):
    each run's position in the range, its block and its log value."""
    index = {c: i for i, c in enumerate(b.commits)}
    rows = [(index[c], k, math.log(v)) for c, k, v in b.cells
            if c in index and first <= index[c] <= last and v > 0]
    pos, block, logs = (np.asarray(x) for x in zip(*rows, strict=True)) if rows else \
        (np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    return pos.astype(int), block.astype(int), logs.astype(float)


def culprit_positions(b: Bisect) -> list[int]:
    """Positions the culprit may take: the first bad commit (a skipped commit
    cannot be told from its successor, as with ``git bisect skip``)."""
    return [j for j in range(b.search_good + 1, b.search_bad + 1)
            if j == b.search_bad or b.commits[j] not in b.skipped]


def posterior(b: Bisect, unaffected_prior: float = 1.0,
              paired: bool = True, huber: float = 0.0,
              measured: frozenset[int] = frozenset()) -> tuple[list[int], np.ndarray]:
    """Posterior over the culprit's position among the current search's
    candidates (``ttfb.stats.changepoint.step_posterior``), fitted from every
    run of the search, endpoints included, so an unlucky endpoint mean cannot
    mislead it. The prior is uniform, but for commits the agent's listing
    marks as changing nothing the scenario imports: ``unaffected_prior``
    each. Unpaired batches (``paired`` false) share one level; ``huber``: runs
    far off the fit weigh less (``step_posterior``). The positions in
    ``measured`` count by the bisect's own runs alone, their monitoring runs
    (each commit's block of its own, < 0) left out."""
    pos, block, y = search_cells(b, b.search_good, b.search_bad)
    if measured:
        keep = ~((block < 0) & np.isin(pos, list(measured)))
        pos, block, y = pos[keep], block[keep], y[keep]
    candidates = culprit_positions(b)
    prior = [unaffected_prior if b.affected and not b.affected[j] else 1.0 for j in candidates]
    return candidates, step_posterior(pos, block if paired else np.zeros_like(block), y,
                                      b.search_good, b.search_bad, candidates, prior, huber)


def contrasts(b: Bisect, pairs: list[tuple[int, int]], paired: bool,
              runs: str = "all") -> list[Contrast | None]:
    """For each pair (good, other) of positions in the range: the log step,
    its two-sided p-value and standard error, from the blocks that ran both
    (``ttfb.stats.changepoint.block_contrasts``). ``runs``: every block's
    (``all``), the confirmation's alone (``handed``, block 0) or the
    bisect's own (``fresh``)."""
    pos, block, y = search_cells(b, 0, len(b.commits) - 1)
    chosen = {"all": np.ones(y.size, bool), "handed": block == 0, "fresh": block > 0}[runs]
    return block_contrasts(pos, block if paired else np.zeros_like(block), y, pairs, chosen)


def fresh_runs(b: Bisect) -> list[int]:
    """The runs of each endpoint (good, bad) the bisect has had beyond the
    confirmation's (block 0)."""
    return [sum(1 for c, k, _ in b.cells if c == end and k > 0)
            for end in (b.commits[0], b.commits[-1])]
