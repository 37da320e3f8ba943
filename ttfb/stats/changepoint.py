"""The bisect's statistics: a posterior over where one step lies in an
ordered range of commits, and the step between two commits, from runs taken
in blocks.

Every run is a cell: its commit's position in the range, its block (the runs
taken side by side: a batch and the endpoint runs beside it) and its value on
the log scale. Each block has a level of its own, drawn around the common
one with a variance estimated from how the endpoints' runs move from block to
block: on a still machine the blocks pool, on a wandering one only
differences within a block weigh (a random intercept, fitted by
quasi-demeaning each block). Callers that want one level for all pass every
run in block 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy.stats import chi2


def group_means(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each value's group mean."""
    means: np.ndarray = (np.bincount(groups, values) / np.bincount(groups))[groups]
    return means


def within_spread(pos: np.ndarray, blocks: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """The runs' sum of squares about their commit's mean within each block,
    and its degrees of freedom (about each commit's mean over all blocks
    where too few commits ran twice in one block)."""
    _, cells = np.unique(pos * (int(blocks.max()) + 1) + blocks, return_inverse=True)
    df = y.size - int(cells.max()) - 1
    if df < 2:
        _, cells = np.unique(pos, return_inverse=True)
        df = y.size - int(cells.max()) - 1
    return float(((y - group_means(y, cells)) ** 2).sum()), max(df, 1)


def between_blocks(pos: np.ndarray, blocks: np.ndarray, y: np.ndarray, good: int, bad: int,
                   sigma2: float) -> float:
    """The variance of the blocks' own levels (method of moments): the mean
    square of each block's mean residual about the endpoints' means, less
    what run noise alone gives it. Only the endpoints ``good`` and ``bad``,
    which every block runs, are used: a commit run in one block hides that
    block's level."""
    ends = (pos == good) | (pos == bad)
    if np.unique(blocks[ends]).size < 2:
        return 0.0
    side = (pos[ends] == bad).astype(int)
    resid = y[ends] - group_means(y[ends], side)
    n = np.bincount(blocks[ends]).astype(float)
    total = np.bincount(blocks[ends], resid, minlength=n.size)
    seen = n > 0
    excess = (total[seen] / n[seen]) ** 2 - sigma2 / n[seen]
    return max(float(excess.mean()), 0.0)


def step_posterior(pos: np.ndarray, block: np.ndarray, y: np.ndarray, good: int, bad: int,
                   candidates: list[int], prior: list[float]) -> np.ndarray:
    """Posterior over the first position at the new level, among
    ``candidates`` (``prior``: each one's weight), from every run between the
    endpoints ``good`` and ``bad`` (included): a change-point model on the log
    scale whose two levels are fitted for each candidate, the step
    integrated out. Sigma from the runs' spread within each commit's block,
    taken at its upper 90 % bound. Raises ``ValueError`` unless each endpoint
    has 2 runs."""
    for end in (good, bad):
        if int((pos == end).sum()) < 2:
            raise ValueError("each endpoint needs at least 2 valid runs")
    _, blocks = np.unique(block, return_inverse=True)
    within, df = within_spread(pos, blocks, y)
    sigma2 = max(within / float(chi2.ppf(0.1, df)), 1e-8)  # upper 90 % bound
    # quasi-demeaning: each block keeps 1 - theta of its mean level
    size = np.bincount(blocks)
    tau2 = between_blocks(pos, blocks, y, good, bad, within / df)
    theta = (1.0 - np.sqrt(sigma2 / (sigma2 + size * tau2)))[blocks]
    one = 1.0 - theta
    y_q = y - theta * group_means(y, blocks)
    a, a_y = float((one * one).sum()), float((one * y_q).sum())
    scores = []
    for j, weight in zip(candidates, prior, strict=True):
        x = (pos >= j).astype(float)
        x_q = x - theta * group_means(x, blocks)
        a_x = float((one * x_q).sum())
        # the step's least squares fit once the common level is fitted (the
        # part of x and y the level does not explain), the step integrated
        # out (-log(sxx)/2); no block holds both sides of j: no evidence
        sxx = float((x_q * x_q).sum()) - (a_x * a_x / a if a > 1e-12 else 0.0)
        sxy = float((x_q * y_q).sum()) - (a_x * a_y / a if a > 1e-12 else 0.0)
        fit = sxy * sxy / sxx / (2 * sigma2) - 0.5 * math.log(sxx) if sxx > 1e-9 else 0.0
        scores.append(fit + math.log(weight))
    post = np.exp(np.asarray(scores) - max(scores))
    normalised: np.ndarray = post / post.sum()
    return normalised


Contrast = tuple[float, float, float]  # log step, two-sided p-value, standard error


def block_contrasts(pos: np.ndarray, block: np.ndarray, y: np.ndarray,
                    pairs: list[tuple[int, int]], chosen: np.ndarray) -> list[Contrast | None]:
    """For each pair (good, other) of positions: the log step from ``good`` to
    ``other``, from the blocks that ran both among the ``chosen`` runs (each
    block weighed by its runs), its two-sided p-value and its standard
    error; None where no block ran both. The runs' spread is always every
    run's."""
    if y.size < 3:
        return [None] * len(pairs)
    _, blocks = np.unique(block, return_inverse=True)
    within, df = within_spread(pos, blocks, y)
    out: list[Contrast | None] = []
    for good, other in pairs:
        step = weight = 0.0
        for k in np.unique(blocks[chosen]):
            here = (blocks == k) & chosen
            a, c = y[here & (pos == good)], y[here & (pos == other)]
            if a.size and c.size:
                w = 1.0 / (1.0 / a.size + 1.0 / c.size)
                step, weight = step + w * float(c.mean() - a.mean()), weight + w
        if not weight:
            out.append(None)
            continue
        step /= weight
        se = math.sqrt(max(within / df, 1e-12) / weight)
        out.append((step, float(2 * special.stdtr(df, -abs(step) / se)), se))
    return out
