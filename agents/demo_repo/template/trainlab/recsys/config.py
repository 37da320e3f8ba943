"""Recommender configuration."""

from dataclasses import dataclass, field

from trainlab.common.config import ConfigError, RunConfig, build
from trainlab.common.telemetry import client


@dataclass
class RecsysConfig(RunConfig):
    num_samples: int = 4096
    num_dense: int = 13
    num_sparse: int = 8
    embedding_rows: int = 1000
    embedding_dim: int = 16
    bottom_mlp: list = field(default_factory=lambda: [64, 32, 16])
    top_mlp: list = field(default_factory=lambda: [64, 32, 1])
    batch_size: int = 128
    learning_rate: float = 0.05
    pooling: str = "sum"

    def validate(self):
        super().validate()
        if self.bottom_mlp[-1] != self.embedding_dim:
            raise ConfigError("bottom_mlp must end at embedding_dim for the dot interaction")
        if self.pooling not in ("sum", "mean"):
            raise ConfigError("pooling must be sum or mean")


def load(raw):
    cfg = build(RecsysConfig, raw)
    client.log("config", workflow="recsys", batch_size=cfg.batch_size)
    return cfg
