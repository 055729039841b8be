"""The torch pieces of protloc.nets: networks, pooling, augmentation and the image dataset.

torch is imported inside the functions, so importing this module stays cheap. The
networks are plain ``torch.nn.Sequential`` stacks, so no module class needs torch at
import time; the FCN's global pooling is a function applied to the network's output.

Both networks share one convolutional trunk: ``depth`` 3x3 conv-BN-ReLU layers in
stages of two, with a 2x2 max-pool between stages and the width doubling per stage
(capped at 8x ``width``), as in the similar-depth CNN/FCN pair of Liimatainen et al.
(2021). The CNN ends in global average-and-max ("concat") pooling and a dense classifier; the FCN ends
in a 1x1 convolution giving one map per class.
"""

from __future__ import annotations

import functools

import numpy as np

from protloc._torch import import_torch
from protloc._validation import check_pixel_dtype, check_pixel_range, to_unit_float

__all__ = [
    "ImageDataset",
    "augment_batch",
    "build_network",
    "n_downsamplings",
    "pool_maps",
    "receptive_field",
]

_MAX_WIDTH_FACTOR = 8


def _stages(depth):
    """Number of conv layers in each stage: pairs, the last one shorter when odd."""
    return [2] * (depth // 2) + [1] * (depth % 2)


def n_downsamplings(depth):
    """Number of 2x2 max-pools in the trunk; the FCN maps are ``1 / 2**k`` the input size.

    Examples
    --------
    >>> n_downsamplings(10), n_downsamplings(4), n_downsamplings(1)
    (4, 1, 0)
    """
    return len(_stages(depth)) - 1


def receptive_field(depth):
    """Receptive field, in input pixels, of one output unit of the trunk.

    Examples
    --------
    >>> receptive_field(1), receptive_field(4), receptive_field(10)
    (3, 14, 140)
    """
    field, jump = 1, 1
    stages = _stages(depth)
    for i, n_conv in enumerate(stages):
        field += 2 * jump * n_conv
        if i < len(stages) - 1:
            field += jump
            jump *= 2
    return field


def _trunk_layers(nn, n_channels, width, depth):
    layers, c_in = [], n_channels
    stages = _stages(depth)
    for i, n_conv in enumerate(stages):
        c_out = width * min(2**i, _MAX_WIDTH_FACTOR)
        for _ in range(n_conv):
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        if i < len(stages) - 1:
            layers.append(nn.MaxPool2d(2))
    return layers, c_in


@functools.cache
def _concat_pool_class():
    torch = import_torch()

    class ConcatPool(torch.nn.Module):
        """Global average and max pooling side by side: ``(n, c, h, w) -> (n, 2c)``.

        Average pooling alone dilutes small bright patterns (nucleoli, centrosomes)
        over the whole field; the max keeps them.
        """

        def forward(self, x):
            return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)

    return ConcatPool


def build_network(kind, *, n_channels, n_outputs, width, depth, generator):
    """Build the CNN (``kind="cnn"``) or FCN (``kind="fcn"``) with seeded weights.

    Parameters are created on the meta device and then initialised from
    ``generator`` only, so the global torch random state is neither read nor
    advanced, and the same generator seed gives the same weights.

    Returns
    -------
    module : torch.nn.Sequential
        On the CPU. The CNN maps ``(n, c, s, s)`` to logits ``(n, n_outputs)``;
        the FCN to logit maps ``(n, n_outputs, s / 2**k, s / 2**k)``.
    """
    torch = import_torch()
    nn = torch.nn
    with torch.device("meta"):
        layers, c_last = _trunk_layers(nn, n_channels, width, depth)
        if kind == "cnn":
            layers += [
                _concat_pool_class()(),
                nn.Linear(2 * c_last, c_last),
                nn.ReLU(inplace=True),
                nn.Linear(c_last, n_outputs),
            ]
        elif kind == "fcn":
            # The per-location twin of the CNN's dense classifier.
            layers += [
                nn.Conv2d(c_last, c_last, kernel_size=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_last, n_outputs, kernel_size=1),
            ]
        else:  # pragma: no cover - internal call
            raise ValueError(f"Unknown network kind {kind!r}.")
        module = nn.Sequential(*layers)
    module = module.to_empty(device="cpu")
    _init_parameters(module, generator)
    return module


def _init_parameters(module, generator):
    torch = import_torch()
    nn = torch.nn
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(
                    layer.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            elif isinstance(layer, nn.BatchNorm2d):
                nn.init.ones_(layer.weight)
                nn.init.zeros_(layer.bias)
                layer.reset_running_stats()
    # The output layer starts small, so initial probabilities sit near 0.5 and
    # the first epochs are not spent undoing large random logits.
    last = module[-1]
    with torch.no_grad():
        last.weight.mul_(0.1)


def pool_maps(maps, pooling, sharpness=5.0):
    """Global pooling of class maps ``(n, k, rows, cols)`` into scores ``(n, k)``.

    ``"lse"`` is log-sum-exp pooling (Pinheiro and Collobert 2015),
    ``log(mean(exp(r * x))) / r``, between mean (r -> 0) and max (r -> inf).
    """
    flat = maps.flatten(2)
    if pooling == "max":
        return flat.amax(dim=2)
    if pooling == "mean":
        return flat.mean(dim=2)
    torch = import_torch()
    n = flat.shape[2]
    return (torch.logsumexp(sharpness * flat, dim=2) - float(np.log(n))) / sharpness


def augment_batch(x, generator, *, jitter=0.1):
    """Random flips, 90-degree rotations and per-channel intensity jitter of a batch.

    Random draws come from ``generator`` (a CPU ``torch.Generator``) whatever the
    batch's device, so training is reproducible on every device.

    Parameters
    ----------
    x : torch.Tensor of shape (n, channels, rows, cols)
    generator : torch.Generator
    jitter : float, default=0.1
        Each channel is scaled by ``1 + U(-jitter, jitter)``. The jitter is only
        multiplicative: fluorescence images are mostly dark, and an additive shift
        would swamp faint patterns.
    """
    torch = import_torch()
    n, c = x.shape[:2]
    square = x.shape[2] == x.shape[3]
    flips = torch.rand((n, 2), generator=generator) < 0.5
    turns = torch.randint(0, 4, (n,), generator=generator)
    gain = 1 + jitter * (2 * torch.rand((n, c, 1, 1), generator=generator) - 1)
    out = []
    for i in range(n):
        image = x[i]
        if flips[i, 0]:
            image = image.flip(1)
        if flips[i, 1]:
            image = image.flip(2)
        k = int(turns[i]) if square else 2 * (int(turns[i]) % 2)
        if k:
            image = torch.rot90(image, k, dims=(1, 2))
        out.append(image)
    return torch.stack(out) * gain.to(x.device, x.dtype)


class ImageDataset:
    """Map-style dataset over an image batch, for ``torch.utils.data.DataLoader``.

    Each item is one image, decoded on demand when ``images`` is an
    :class:`~protloc.io.HPAImageSequence`: channels selected, intensities scaled by
    the pixel-scale contract (uint8 / 255, uint16 / 65535, float in [0, 1]; see
    :mod:`protloc._validation`) and resized to ``image_size``.

    Parameters
    ----------
    images : ndarray of shape (n, rows, cols, channels) or HPAImageSequence
    positions : list of int
        Channel positions to keep, in network order.
    image_size : int or None
        Square side the network sees; None keeps each image's size.
    min_size : int
        Smallest allowed rows and cols (the network's receptive field).
    targets : ndarray, optional
        Targets of all of ``images``, returned beside each image.
    indices : array of int, optional
        The samples of ``images`` this dataset serves (a training or validation
        split) without copying them; default all.
    """

    def __init__(self, images, positions, image_size, min_size, targets=None, indices=None):
        self.images = images
        self.positions = list(positions)
        self.image_size = image_size
        self.min_size = min_size
        self.targets = targets
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        self._lazy = not isinstance(images, np.ndarray)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        torch = import_torch()
        i = int(self.indices[i])
        image = self.images.load([i])[0] if self._lazy else self.images[i]
        if self._lazy:
            # Arrays were checked whole up front; lazy samples only now, once decoded.
            where = f"sample {self.images.ids[i]!r}"
            check_image_size(image.shape[:2], self.min_size, where=where)
            check_pixel_dtype(image.dtype, name=f"Image of {where}")
            check_pixel_range(image, name=f"Image of {where}")
        pixels = to_unit_float(image[..., self.positions])
        tensor = torch.from_numpy(np.ascontiguousarray(pixels))
        tensor = tensor.permute(2, 0, 1)
        size = self.image_size
        if size is not None and tuple(tensor.shape[1:]) != (size, size):
            tensor = torch.nn.functional.interpolate(
                tensor[None],
                size=(size, size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )[0]
        if self.targets is None:
            return tensor
        return tensor, torch.as_tensor(self.targets[i])


def collate_images(batch):
    """``DataLoader`` collation that names the fix when images differ in size."""
    torch = import_torch()
    sizes = {tuple((item[0] if isinstance(item, tuple) else item).shape[1:]) for item in batch}
    if len(sizes) > 1:
        raise ValueError(
            f"A batch holds images of different sizes {sorted(sizes)}; with image_size=None "
            "every image must have the same size. Set image_size (e.g. image_size=256) so "
            "that each image is resized, or resize the images."
        )
    return torch.utils.data.default_collate(batch)


def check_image_size(shape, min_size, *, where="X"):
    """Raise when images are smaller than the network's receptive field."""
    rows, cols = int(shape[0]), int(shape[1])
    if rows < min_size or cols < min_size:
        raise ValueError(
            f"Images of {where} are {rows}x{cols} pixels, smaller than the network's "
            f"receptive field of {min_size}x{min_size}; pass larger images or lower depth."
        )
