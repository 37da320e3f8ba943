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
run in block 0. Runs made before the search (the range's monitoring runs)
come in negative blocks, one per commit: their levels' variance is read from
how far they sit from the best one-step fit (``handed_spread``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy.stats import chi2

from ttfb.stats.comparisons import MAD_SCALE


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
    return _level_variance(y[ends] - group_means(y[ends], side), blocks[ends], sigma2)


def _level_variance(resid: np.ndarray, blocks: np.ndarray, sigma2: float) -> float:
    """The variance of the blocks' levels from the runs' residuals: the mean
    square of each block's mean residual, less what run noise (``sigma2``)
    alone gives it; at least 0."""
    n = np.bincount(blocks).astype(float)
    total = np.bincount(blocks, resid, minlength=n.size)
    seen = n > 0
    excess = (total[seen] / n[seen]) ** 2 - sigma2 / n[seen]
    return max(float(excess.mean()), 0.0)


def handed_spread(pos: np.ndarray, blocks: np.ndarray, y: np.ndarray, handed: np.ndarray,
                  sigma2: float) -> float:
    """The variance of the levels of the blocks in ``handed`` (runs made long
    before the search, a block per commit): the mean square of each such
    block's mean residual from the one-step fit that best explains every run
    (least squares, blocks ignored), less what run noise alone gives it. A
    step put in the wrong place leaves larger residuals, so doubt about the
    step makes these runs weigh less, never more."""
    best, fitted = math.inf, np.full(y.size, y.mean())
    for j in np.unique(pos)[1:]:
        means = group_means(y, (pos >= j).astype(int))
        rss = float(((y - means) ** 2).sum())
        if rss < best:
            best, fitted = rss, means
    return _level_variance(y[handed] - fitted[handed], blocks[handed], sigma2)


def step_posterior(pos: np.ndarray, block: np.ndarray, y: np.ndarray, good: int, bad: int,
                   candidates: list[int], prior: list[float],
                   huber: float = 0.0) -> np.ndarray:
    """Posterior over the first position at the new level, among
    ``candidates`` (``prior``: each one's weight), from every run between the
    endpoints ``good`` and ``bad`` (included): a change-point model on the log
    scale whose two levels are fitted for each candidate, the step
    integrated out. Sigma from the runs' spread within each commit's block,
    taken at its upper 90 % bound. Raises ``ValueError`` unless each endpoint
    has 2 runs.

    ``huber`` > 0: a run far from what the likeliest position's fit expects
    (beyond ``huber`` robust deviations of the residuals) weighs less, as in
    Huber's M-estimate, and sigma is what the weighted runs leave: one run
    40 % off its commit (a machine's hiccup) no longer inflates sigma for
    every other run, nor pulls a step towards itself."""
    for end in (good, bad):
        if int((pos == end).sum()) < 2:
            raise ValueError("each endpoint needs at least 2 valid runs")
    _, blocks = np.unique(block, return_inverse=True)
    within, df = within_spread(pos, blocks, y)
    sigma2 = max(within / float(chi2.ppf(0.1, df)), 1e-8)  # upper 90 % bound
    # quasi-demeaning: each block keeps 1 - theta of its mean level
    size = np.bincount(blocks)
    handed = block < 0  # runs made before the search, each commit's at a time of its own
    own = ~handed
    tau2 = between_blocks(pos[own], blocks[own], y[own], good, bad, within / df)
    spread = np.full(size.size, tau2)
    if handed.any():
        spread[np.unique(blocks[handed])] = handed_spread(pos, blocks, y, handed, within / df)
    theta = (1.0 - np.sqrt(sigma2 / (sigma2 + size * spread)))[blocks]
    one = 1.0 - theta
    y_q = y - theta * group_means(y, blocks)
    x_qs = [x - theta * group_means(x, blocks)
            for x in ((pos >= j).astype(float) for j in candidates)]
    weights = np.ones_like(y)
    post = _step_scores(one, y_q, x_qs, prior, weights, sigma2)
    if huber > 0:
        best = int(np.argmax(post))
        residual = _residuals(one, y_q, x_qs[best], weights)
        scale = MAD_SCALE * float(np.median(np.abs(residual - np.median(residual))))
        if scale > 0:
            far = np.abs(residual) > huber * scale
            if far.any():
                weights = np.where(far, huber * scale / np.maximum(np.abs(residual), 1e-300),
                                   1.0)
                kept = float((weights * residual**2).sum()) / float((residual**2).sum())
                post = _step_scores(one, y_q, x_qs, prior, weights, sigma2 * kept)
    return post


def _step_scores(one: np.ndarray, y_q: np.ndarray, x_qs: list[np.ndarray], prior: list[float],
                 w: np.ndarray, sigma2: float) -> np.ndarray:
    """The normalised posterior of each candidate step (its indicator, quasi-
    demeaned, in ``x_qs``) given runs weighted by ``w``."""
    a, a_y = float((w * one * one).sum()), float((w * one * y_q).sum())
    scores = []
    for x_q, weight in zip(x_qs, prior, strict=True):
        a_x = float((w * one * x_q).sum())
        # the step's least squares fit once the common level is fitted (the
        # part of x and y the level does not explain), the step integrated
        # out (-log(sxx)/2); no block holds both sides of j: no evidence
        sxx = float((w * x_q * x_q).sum()) - (a_x * a_x / a if a > 1e-12 else 0.0)
        sxy = float((w * x_q * y_q).sum()) - (a_x * a_y / a if a > 1e-12 else 0.0)
        fit = sxy * sxy / sxx / (2 * sigma2) - 0.5 * math.log(sxx) if sxx > 1e-9 else 0.0
        scores.append(fit + math.log(weight))
    post = np.exp(np.asarray(scores) - max(scores))
    normalised: np.ndarray = post / post.sum()
    return normalised


def _residuals(one: np.ndarray, y_q: np.ndarray, x_q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The runs' residuals from the weighted fit of a level and one step."""
    design = np.column_stack([one, x_q]) * np.sqrt(w)[:, None]
    beta = np.linalg.lstsq(design, y_q * np.sqrt(w), rcond=None)[0]
    fitted: np.ndarray = np.column_stack([one, x_q]) @ beta
    residual: np.ndarray = y_q - fitted
    return residual


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
