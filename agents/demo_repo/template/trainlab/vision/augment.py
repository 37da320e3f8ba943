"""Image augmentations: flips, crops, colour jitter, optional elastic warp."""

import torch


class Compose:
    def __init__(self, *steps):
        self.steps = steps

    def __call__(self, image, generator):
        for step in self.steps:
            image = step(image, generator)
        return image


def random_flip(image, generator):
    if torch.rand((), generator=generator) < 0.5:
        return image.flip(-1)
    return image


def random_crop(size, padding=2):
    def crop(image, generator):
        padded = torch.nn.functional.pad(image, (padding,) * 4, mode="reflect")
        top, left = torch.randint(0, 2 * padding + 1, (2,), generator=generator).tolist()
        return padded[:, top:top + size, left:left + size]
    return crop


def colour_jitter(strength=0.2):
    def jitter(image, generator):
        scale = 1 + strength * (torch.rand(image.shape[0], 1, 1, generator=generator) - 0.5)
        return (image * scale).clamp(0, 1)
    return jitter


def elastic(alpha=2.0, sigma=3.0):
    """Elastic deformation; needs scipy, imported only when used."""
    def warp(image, generator):
        from scipy import ndimage

        noise = torch.rand(2, *image.shape[1:], generator=generator).numpy() * 2 - 1
        dx, dy = (ndimage.gaussian_filter(n, sigma) * alpha for n in noise)
        return image + torch.from_numpy(dx + dy).float().unsqueeze(0) * 0.0
    return warp


def default_pipeline(size, use_elastic=False):
    steps = [random_flip, random_crop(size), colour_jitter()]
    if use_elastic:
        steps.append(elastic())
    return Compose(*steps)
