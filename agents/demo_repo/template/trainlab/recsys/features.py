"""Synthetic click log and its preprocessing into dense and categorical features."""

import gc

import numpy as np
import torch
from numpy.random import default_rng
from torch.utils.data import Dataset

from trainlab.recsys.calibration import platt_scale  # noqa: F401 - used by evaluation


def synthetic_log(num_samples, num_dense, num_sparse, rows, seed):
    """Click-log records as they arrive from the event pipeline."""
    rng = default_rng(seed)
    dense = rng.lognormal(mean=0.0, sigma=1.0, size=(num_samples, num_dense)).round(3)
    # power-law ids, as real categorical features are
    sparse = rng.zipf(1.3, size=(num_samples, num_sparse)) % (rows * 4)
    clicks = rng.random(num_samples) < 0.2
    return [
        {"dense": d, "sparse": s, "click": int(c)}
        for d, s, c in zip(dense.tolist(), sparse.tolist(), clicks.tolist())
    ]


def to_arrays(records):
    dense = np.array([r["dense"] for r in records], dtype=np.float32)
    sparse = np.array([r["sparse"] for r in records], dtype=np.int64)
    clicks = np.array([r["click"] for r in records], dtype=np.float32)
    return dense, sparse, clicks


def normalise_dense(dense):
    logged = np.log1p(dense)
    return (logged - logged.mean(axis=0)) / (logged.std(axis=0) + 1e-6)


def remap_ids(sparse, rows):
    """Frequency-ranked vocabulary per table: frequent ids get small indices."""
    out = np.empty_like(sparse)
    for column in range(sparse.shape[1]):
        values, inverse, counts = np.unique(
            sparse[:, column], return_inverse=True, return_counts=True)
        rank = np.empty_like(values)
        rank[np.argsort(-counts, kind="stable")] = np.arange(len(values))
        out[:, column] = rank[inverse] % rows
    return out


class ClickDataset(Dataset):
    def __init__(self, dense, sparse, clicks):
        self.dense = torch.from_numpy(dense)
        self.sparse = torch.from_numpy(sparse)
        self.clicks = torch.from_numpy(clicks)

    def __len__(self):
        return len(self.clicks)

    def __getitem__(self, index):
        return self.dense[index], self.sparse[index], self.clicks[index]


def build_dataset(cfg):
    # ~10^5 short-lived dicts and lists: with the cyclic GC on, its full
    # collections rescan every long-lived object (all of torch) several times
    paused = gc.isenabled()
    gc.disable()
    try:
        records = synthetic_log(
            cfg.num_samples, cfg.num_dense, cfg.num_sparse, cfg.embedding_rows, cfg.seed)
        dense, sparse, clicks = to_arrays(records)
        return ClickDataset(normalise_dense(dense), remap_ids(sparse, cfg.embedding_rows), clicks)
    finally:
        if paused:
            gc.enable()
