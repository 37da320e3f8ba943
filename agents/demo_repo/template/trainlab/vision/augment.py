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
        from scipy import interpolate, ndimage

        size = image.shape[-1]
        noise = torch.rand(2, *image.shape[1:], generator=generator).numpy() * 2 - 1
        dx, dy = (ndimage.gaussian_filter(n, sigma) * alpha for n in noise)
        grid = (range(size), range(size))
        warped = [interpolate.RegularGridInterpolator(grid, channel.numpy(), bounds_error=False,
                                                      fill_value=0.0)
                  for channel in image]
        ys, xs = (a + d for a, d in zip(torch.meshgrid(torch.arange(size), torch.arange(size),
                                                          indexing="ij"), (dy, dx)))
        points = torch.stack([ys.flatten(), xs.flatten()], dim=1).numpy()
        return torch.stack([torch.from_numpy(w(points)).float().reshape(size, size)
                            for w in warped])
    return warp


def default_pipeline(size, use_elastic=False):
    steps = [random_flip, random_crop(size), colour_jitter()]
    if use_elastic:
        steps.append(elastic())
    return Compose(*steps)
