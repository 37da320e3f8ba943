"""A synthetic labelled image set: coloured shapes on noise."""

import torch
from torch.utils.data import Dataset

from trainlab.vision.augment import default_pipeline


def synthetic_images(count, size, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, size, size, generator=generator) * 0.3
    labels = torch.randint(0, classes, (count,), generator=generator)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for i in range(count):
        c = int(labels[i])
        radius = size // 4 + c % 3
        mask = ((yy - size // 2) ** 2 + (xx - size // 2) ** 2) < radius ** 2
        images[i, c % 3][mask] += 0.6
    return images.clamp(0, 1), labels


class ShapeImages(Dataset):
    def __init__(self, images, labels, transform, seed):
        self.images, self.labels = images, labels
        self.transform = transform
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(self.images[index], self.generator), self.labels[index]


def build_dataset(cfg):
    images, labels = synthetic_images(cfg.num_images, cfg.image_size, cfg.classes, cfg.seed)
    mean = images.mean(dim=(0, 2, 3), keepdim=True)[0]
    std = images.std(dim=(0, 2, 3), keepdim=True)[0]
    normalised = (images - mean) / std
    return ShapeImages(normalised, labels, default_pipeline(cfg.image_size, cfg.elastic), cfg.seed)
