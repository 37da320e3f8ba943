"""Train the language model: the entry point the lab measures."""

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from trainlab.common.config import ConfigError, RunConfig, build
from trainlab.common.lab import first_batch, phase
from trainlab.common.runtime import resolve_device, seed_everything, synchronize
from trainlab.lm.data import build_dataset
from trainlab.lm.model import TinyLM


@dataclass
class LMConfig(RunConfig):
    num_sentences: int = 2000
    tokenizer_sentences: int = 500
    num_merges: int = 60
    context: int = 32
    width: int = 64
    depth: int = 2
    heads: int = 4
    batch_size: int = 16
    learning_rate: float = 3e-4

    def validate(self):
        super().validate()
        if self.width % self.heads:
            raise ConfigError("width must be divisible by heads")


def main(raw_config):
    with phase("config"):
        cfg = build(LMConfig, raw_config)
        seed_everything(cfg.seed, cfg.deterministic)
        device = resolve_device(cfg.device)
    with phase("data"):
        tokenizer, dataset = build_dataset(cfg)
        batches = iter(DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True))
        tokens, targets = next(batches)
    first_batch()
    with phase("model"):
        model = TinyLM(len(tokenizer.vocab), cfg.width, cfg.depth, cfg.heads, cfg.context)
        model = model.to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    with phase("first_step"):
        for step in range(cfg.batches):
            if step:
                tokens, targets = next(batches)
            tokens, targets = tokens.to(device), targets.to(device)
            logits = model(tokens)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        synchronize(device)
    return float(loss.detach())


if __name__ == "__main__":
    print(main({}))
