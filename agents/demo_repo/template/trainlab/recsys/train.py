"""Train the recommender: the entry point the lab measures."""

import torch
from torch.utils.data import DataLoader

from trainlab.common.lab import first_batch, phase
from trainlab.common.runtime import resolve_device, seed_everything, synchronize
from trainlab.recsys import config as recsys_config
from trainlab.recsys.features import build_dataset
from trainlab.recsys.model import DLRM


def main(raw_config):
    with phase("config"):
        cfg = recsys_config.load(raw_config)
        seed_everything(cfg.seed, cfg.deterministic)
        device = resolve_device(cfg.device)
    with phase("data"):
        loader = DataLoader(build_dataset(cfg), batch_size=cfg.batch_size, shuffle=True)
        batches = iter(loader)
        dense, sparse, clicks = next(batches)
    first_batch()
    with phase("model"):
        model = DLRM(cfg.num_dense, cfg.num_sparse, cfg.embedding_rows, cfg.embedding_dim,
                     cfg.bottom_mlp, cfg.top_mlp, cfg.pooling).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate)
    with phase("first_step"):
        for step in range(cfg.batches):
            if step:
                dense, sparse, clicks = next(batches)
            dense, sparse, clicks = dense.to(device), sparse.to(device), clicks.to(device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(dense, sparse), clicks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        synchronize(device)
    return float(loss.detach())


if __name__ == "__main__":
    print(main({}))
