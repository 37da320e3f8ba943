"""DLRM-style model: bottom MLP, embedding bags, dot interaction, top MLP."""

import torch
from torch import nn


def mlp(sizes, final_activation=True):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    def __init__(self, num_dense, num_sparse, rows, dim, bottom, top, pooling="sum"):
        super().__init__()
        self.bottom = mlp([num_dense, *bottom])
        self.tables = nn.ModuleList(
            nn.EmbeddingBag(rows, dim, mode=pooling) for _ in range(num_sparse))
        pairs = (num_sparse + 1) * num_sparse // 2
        self.top = mlp([dim + pairs, *top], final_activation=False)

    def forward(self, dense, sparse):
        x = self.bottom(dense)
        embedded = [table(sparse[:, i:i + 1]) for i, table in enumerate(self.tables)]
        features = torch.stack([x, *embedded], dim=1)
        interactions = torch.bmm(features, features.transpose(1, 2))
        rows, cols = torch.triu_indices(features.shape[1], features.shape[1], offset=1)
        flat = interactions[:, rows, cols]
        return self.top(torch.cat([x, flat], dim=1)).squeeze(1)
