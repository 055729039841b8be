"""The parameters that several estimators share, defined once.

``device``, ``precision``, ``batch_size``, ``progress``, ``cache``, ``random_state``,
``n_jobs``, ``shard_size`` and ``checkpoint`` mean the same thing in every protloc estimator that
takes them. This module holds, for each:

- its ``_parameter_constraints`` entry (:data:`SHARED_CONSTRAINTS`, picked with
  :func:`shared_constraints`);
- its numpydoc text (:data:`SHARED_DOCS`), filled into an estimator's docstring by the
  :func:`fill_shared_docs` decorator wherever the docstring holds ``%(name)s``, the
  way imbalanced-learn shares its docstrings (``imblearn.utils._docstring``);
- the helper that turns it into what the code uses: :func:`fit_device` and
  :func:`runtime_device` (one ``device_`` policy), :func:`cache_folder` (``~``
  expanded once), :func:`seeds` (one way from ``random_state`` to seeds),
  :func:`worker_count`. The one cache-key builder is :func:`protloc._cache.cache_key`.

Nothing here imports an estimator, torch or timm at import time.
"""

from __future__ import annotations

import inspect
import os
from numbers import Integral
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions

__all__ = [
    "SHARED_CONSTRAINTS",
    "SHARED_DOCS",
    "cache_folder",
    "fill_shared_docs",
    "fit_device",
    "runtime_device",
    "seeds",
    "shared_constraints",
    "worker_count",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class _TorchDevice(Options):
    """A ``torch.device`` instance, recognised without importing torch.

    A subclass of ``Options`` only because scikit-learn accepts constraint objects of
    its own classes.
    """

    def __init__(self):
        super().__init__(object, set())

    def is_satisfied_by(self, val):
        return type(val).__module__ == "torch" and type(val).__name__ == "device"

    def __str__(self):
        return "an instance of 'torch.device'"


SHARED_CONSTRAINTS = {
    "device": [str, _TorchDevice()],
    "precision": [StrOptions(set(PRECISIONS))],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "progress": ["boolean"],
    "cache": [None, str, os.PathLike],
    "random_state": ["random_state"],
    "n_jobs": [None, Integral],
    "checkpoint": [None, str, os.PathLike],
    "shard_size": [None, Interval(Integral, 1, None, closed="left")],
}

# name -> (type, description); the "default=" is read from each signature.
_DOC_ENTRIES = {
    "device": (
        "str or torch.device",
        'Where networks run: ``"auto"`` (CUDA, then Apple MPS, then the CPU), ``"cpu"``,\n'
        '``"cuda"``, ``"cuda:N"`` or ``"mps"``. Resolved once in ``fit``; the fitted\n'
        '``device_`` holds the result as a string (``"cpu"``, ``"cuda"``, ...). Asking for\n'
        "a device that is not there raises instead of running elsewhere.",
    ),
    "precision": (
        '{"auto", "fp32", "bf16", "fp16"}',
        'Autocast precision of the network; ``"auto"`` is bf16 (fp16 where bf16 is not\n'
        "supported) on CUDA and fp32 elsewhere.",
    ),
    "batch_size": (
        "int",
        "Images sent through the network per step (for CellCrops input: cells, each\n"
        "with all its regions and channels). Larger is faster until memory runs out.",
    ),
    "progress": ("bool", "Show a progress bar (tqdm, on stderr)."),
    "cache": (
        "str, path-like or None",
        "Folder of the on-disk cache; None caches nothing. ``~`` is expanded. Each\n"
        "estimator writes its own sub-folder, so several may share one folder. Entries\n"
        "are keyed by a hash of their content and of everything that shapes them, and\n"
        "written atomically: re-runs and cross-validation folds reuse them, and an\n"
        "interrupted run resumes.",
    ),
    "random_state": (
        "int, RandomState instance or None",
        "Seeds every random step of this estimator, through local generators only\n"
        "(never the global numpy or torch state). Pass an int for reproducible results.",
    ),
    "n_jobs": (
        "int or None",
        "Parallel workers over samples (or candidates), through joblib or a worker\n"
        "pool. None means 1 unless inside a ``joblib.parallel_config`` context; -1\n"
        "means one per processor.",
    ),
    "shard_size": (
        "int or None",
        "Samples per parallel task: the input is cut into contiguous shards that run\n"
        "through joblib (``n_jobs`` local workers, or a Dask cluster under\n"
        '``joblib.parallel_config(backend="dask")``). None gives one shard per worker.\n'
        "Results are the same, in input order, whatever the shards.",
    ),
    "checkpoint": (
        "str, path-like or None",
        "Folder where the state of a long ``fit`` is saved atomically as it goes\n"
        "(``~`` is expanded); None saves nothing. Each estimator writes its own file,\n"
        "named by a hash of the data and parameters, so a later ``fit`` of the same\n"
        "problem resumes from it and gives the result an uninterrupted run would have.",
    ),
}

#: The numpydoc description of each shared parameter (without its type line).
SHARED_DOCS = {name: text for name, (_, text) in _DOC_ENTRIES.items()}


def shared_constraints(*names):
    """The ``_parameter_constraints`` entries of the shared parameters ``names``.

    Examples
    --------
    >>> sorted(shared_constraints("progress", "cache"))
    ['cache', 'progress']
    """
    return {name: list(SHARED_CONSTRAINTS[name]) for name in names}


def _doc_entry(name, default, indent):
    kind, text = _DOC_ENTRIES[name]
    if default is inspect.Parameter.empty:
        head = f"{name} : {kind}"
    else:
        shown = f'"{default}"' if isinstance(default, str) else repr(default)
        head = f"{name} : {kind}, default={shown}"
    body = "\n".join(indent + "    " + line for line in text.splitlines())
    return f"{head}\n{body}"


def fill_shared_docs(obj):
    """Fill each ``%(name)s`` of ``obj``'s docstring with the shared parameter's entry.

    The entry is ``name : type, default=<the signature's default>`` followed by the
    shared description, indented like the placeholder. Works on classes (the
    signature of ``__init__``) and on functions.

    Examples
    --------
    >>> @fill_shared_docs
    ... def f(progress=True):
    ...     '''Do.
    ...
    ...     Parameters
    ...     ----------
    ...     %(progress)s
    ...     '''
    >>> print(f.__doc__.splitlines()[4].strip())
    progress : bool, default=True
    """
    doc = obj.__doc__
    if not doc:
        return obj
    signature = inspect.signature(obj.__init__ if isinstance(obj, type) else obj)
    lines = []
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith("%(") and stripped.endswith(")s") and stripped[2:-2] in _DOC_ENTRIES:
            name = stripped[2:-2]
            indent = line[: len(line) - len(line.lstrip())]
            parameter = signature.parameters.get(name)
            default = inspect.Parameter.empty if parameter is None else parameter.default
            lines.append(indent + _doc_entry(name, default, indent))
        else:
            lines.append(line)
    obj.__doc__ = "\n".join(lines) + ("\n" if doc.endswith("\n") else "")
    return obj


# --------------------------------------------------------------------------- device
def fit_device(device):
    """Resolve ``device`` once, in ``fit``: the string stored as ``device_``.

    Examples
    --------
    >>> fit_device("cpu")
    'cpu'
    """
    from protloc._torch import resolve_device

    return str(resolve_device(device))


def runtime_device(estimator):
    """The torch.device a fitted estimator runs on: its ``device_``.

    An estimator unpickled on a machine without its fitted device (fitted on a GPU,
    used on a laptop) falls back to the ``device`` policy again when that policy is
    ``"auto"``; an explicit device that is missing raises.
    """
    from protloc._torch import import_torch, resolve_device

    torch = import_torch()
    device = torch.device(estimator.device_)
    available = device.type == "cpu" or (
        torch.cuda.is_available() if device.type == "cuda" else torch.backends.mps.is_available()
    )
    if available:
        return device
    if estimator.device == "auto":
        return resolve_device("auto")
    return resolve_device(estimator.device_)  # raises with the fix


# --------------------------------------------------------------------------- folders
def cache_folder(path):
    """The folder named by a ``cache=`` or ``checkpoint=`` value, ``~`` expanded.

    Returns None for None. The path is made absolute, so a later change of working
    directory does not move the cache.

    Examples
    --------
    >>> cache_folder(None) is None
    True
    >>> cache_folder("~/x") == Path.home() / "x"
    True
    """
    if path is None:
        return None
    return Path(os.path.expanduser(os.fspath(path))).absolute()


# --------------------------------------------------------------------------- seeds
def seeds(random_state, n):
    """``n`` independent int seeds drawn from ``random_state``.

    Every random step (weight initialisation, data loader shuffling, augmentation,
    a genetic algorithm's generator) takes its own seed from here, in a fixed order,
    and builds a local generator: ``np.random.default_rng(seed)`` or
    ``torch.Generator().manual_seed(seed)``.

    Examples
    --------
    >>> seeds(0, 2) == seeds(0, 2)
    True
    >>> len(seeds(None, 3))
    3
    """
    rng = check_random_state(random_state)
    return [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=n)]


def worker_count(n_jobs):
    """The number of workers ``n_jobs`` asks for (joblib's reading of it).

    Examples
    --------
    >>> worker_count(None), worker_count(2)
    (1, 2)
    """
    from joblib import effective_n_jobs

    return int(effective_n_jobs(n_jobs))
