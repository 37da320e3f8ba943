"""Platt scaling: calibrate click probabilities on a held-out slice."""

import numpy as np
from scipy import optimize


def platt_scale(logits, clicks):
    """Fit a, b so that sigmoid(a * logit + b) matches the observed click rate."""
    logits = np.asarray(logits, dtype=float)
    clicks = np.asarray(clicks, dtype=float)

    def loss(params):
        a, b = params
        p = 1 / (1 + np.exp(-(a * logits + b)))
        eps = 1e-9
        return -np.mean(clicks * np.log(p + eps) + (1 - clicks) * np.log(1 - p + eps))

    return optimize.minimize(loss, x0=[1.0, 0.0], method="L-BFGS-B").x
