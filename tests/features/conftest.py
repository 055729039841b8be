"""Fixtures of the feature tests: tiny images, a local checkpoint and a naive reference."""

import numpy as np
import pytest


def random_weights_file(tmp_path_factory, backbone, seed):
    """A timm ``backbone``'s state dict (.safetensors) with reproducible random weights."""
    import timm
    from safetensors.torch import save_file

    from protloc.features._weights import init_random_

    model = init_random_(timm.create_model(backbone), seed=seed)
    path = tmp_path_factory.mktemp("weights") / f"{backbone}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A test_efficientnet state dict (.safetensors) with reproducible non-trivial weights."""
    return random_weights_file(tmp_path_factory, "test_efficientnet", seed=7)


@pytest.fixture(scope="session")
def lite0(tmp_path_factory):
    """tf_efficientnet_lite0 with reproducible random weights, as a .safetensors file."""
    return random_weights_file(tmp_path_factory, "tf_efficientnet_lite0", seed=3)


@pytest.fixture(scope="session")
def images():
    """Five 40x40 4-channel uint8 images with some structure (blobs on noise)."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 60, (5, 40, 40, 4)).astype(np.uint8)
    rows, cols = np.mgrid[:40, :40]
    for i in range(5):
        for c in range(4):
            r0, c0 = rng.integers(8, 32, 2)
            X[i, :, :, c] += (180 * np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / 40)).astype(
                np.uint8
            )
    return X


@pytest.fixture(scope="session")
def naive_features():
    """The obvious per-image, per-channel loop the batched extractor must reproduce."""
    import timm
    import torch
    import torch.nn.functional as F

    def run(images, checkpoint, *, image_size, backbone="test_efficientnet"):
        """uint8 images: planes are resized in uint8, like PIL, then scaled to [0, 1]."""
        from safetensors.torch import load_file

        model = timm.create_model(backbone)
        model.load_state_dict(load_file(str(checkpoint)))
        model.eval()
        cfg = model.pretrained_cfg
        rows = []
        for image in images:
            row = []
            for c in range(image.shape[-1]):
                plane = torch.tensor(image[..., c])[None, None]
                plane = F.interpolate(
                    plane,
                    size=(image_size, image_size),
                    mode=cfg["interpolation"],
                    antialias=True,
                )
                plane = plane.to(torch.float32) / 255
                x = torch.cat([(plane - m) / s for m, s in zip(cfg["mean"], cfg["std"])], dim=1)
                with torch.no_grad():
                    row.append(model.forward_head(model.forward_features(x), pre_logits=True)[0])
            rows.append(torch.cat(row).numpy())
        return np.stack(rows)

    return run
