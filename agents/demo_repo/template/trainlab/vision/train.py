"""Train the image classifier: the entry point the lab measures."""

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from trainlab.common.config import ConfigError, RunConfig, build
from trainlab.common.lab import first_batch, phase
from trainlab.common.runtime import resolve_device, seed_everything, synchronize
from trainlab.vision.data import build_dataset
from trainlab.vision.model import ConvNet


@dataclass
class VisionConfig(RunConfig):
    num_images: int = 512
    image_size: int = 32
    classes: int = 10
    width: int = 16
    depth: int = 2
    batch_size: int = 32
    learning_rate: float = 0.1
    elastic: bool = False

    def validate(self):
        super().validate()
        if self.image_size < 8:
            raise ConfigError("image_size must be at least 8")


def main(raw_config):
    with phase("config"):
        cfg = build(VisionConfig, raw_config)
        seed_everything(cfg.seed, cfg.deterministic)
        device = resolve_device(cfg.device)
    with phase("data"):
        loader = DataLoader(build_dataset(cfg), batch_size=cfg.batch_size, shuffle=True)
        batches = iter(loader)
        images, labels = next(batches)
    first_batch()
    with phase("model"):
        model = ConvNet(cfg.classes, cfg.width, cfg.depth).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=0.9)
    with phase("first_step"):
        for step in range(cfg.batches):
            if step:
                images, labels = next(batches)
            images, labels = images.to(device), labels.to(device)
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        synchronize(device)
    return float(loss.detach())


if __name__ == "__main__":
    print(main({}))
