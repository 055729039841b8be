"""Shards: contiguous runs of samples processed as joblib tasks, locally or on a cluster.

The heavy transformers (segmentation, CNN features) cut their input into shards and
send each to :func:`map_shards`. joblib decides where the shards run: in this process
(``n_jobs=1``), in local worker processes (``n_jobs>1``), or on a Dask cluster under
``joblib.parallel_config(backend="dask")``. A task receives the shard's slice of the
input (an :class:`~protloc.io.HPAImageSequence` slice holds only file paths) and
returns its results, which come back in input order.

Each process keeps the models it built in a small registry (:func:`shared_model`), so
a worker builds a model once and reuses it for every shard it receives.
:func:`extract` fills a shared cache with the masks and features of one shard of a
pipeline's input, for cluster array jobs (``protloc extract --shard I/N``).
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict

__all__ = [
    "clear_models",
    "extract",
    "extract_all",
    "map_shards",
    "model_builds",
    "parse_shard",
    "runs_here",
    "shard_bounds",
    "shard_range",
    "shared_model",
]

# A few models per process: a pipeline uses up to one per backbone plus Cellpose's.
_MAX_MODELS = 8
_models = OrderedDict()
_builds = [0]
_lock = threading.Lock()


def shared_model(key, build):
    """The model stored under ``key`` in this process, built by ``build()`` when absent.

    ``key`` names everything that makes the model (network, weights, device). The
    registry keeps the last few models used, so that a worker process reuses its
    model for every shard it gets instead of building it per task.

    Examples
    --------
    >>> before = model_builds()
    >>> shared_model(("doc", 1), lambda: "a model") is shared_model(("doc", 1), list)
    True
    >>> model_builds() - before
    1
    """
    with _lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
        model = build()
        _builds[0] += 1
        _models[key] = model
        while len(_models) > _MAX_MODELS:
            _models.popitem(last=False)
        return model


def clear_models():
    """Forget the models this process holds (they are freed once nothing else uses them)."""
    with _lock:
        _models.clear()


def model_builds():
    """How many models this process has built through :func:`shared_model`."""
    return _builds[0]


def shard_bounds(n_samples, shard_size, n_jobs):
    """``(start, stop)`` of each shard of ``n_samples`` samples.

    ``shard_size=None`` gives one shard per joblib worker (``effective_n_jobs``, which
    counts the cluster's worker threads under the Dask backend).

    Examples
    --------
    >>> shard_bounds(5, 2, None)
    [(0, 2), (2, 4), (4, 5)]
    >>> shard_bounds(5, None, 1)
    [(0, 5)]
    """
    from joblib import effective_n_jobs

    if n_samples == 0:
        return [(0, 0)]
    if shard_size is None:
        shard_size = math.ceil(n_samples / max(1, effective_n_jobs(n_jobs)))
    return [(a, min(a + shard_size, n_samples)) for a in range(0, n_samples, shard_size)]


def map_shards(func, tasks, n_jobs):
    """Yield ``func(*args)`` for each tuple of ``tasks``, in order, through joblib.

    Tasks go to ``joblib.Parallel(n_jobs)``, which follows the active
    ``joblib.parallel_config`` (e.g. ``backend="dask"``); a single task runs here,
    unless a Dask backend is active (the cluster's workers read the files and hold
    the models). Results are yielded in order as they complete, so the caller can
    store each one before the next arrives.
    """
    from joblib import Parallel, delayed

    if runs_here(len(tasks)):
        yield func(*tasks[0])
        return

    yield from Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(func)(*args) for args in tasks
    )


def runs_here(n_tasks):
    """Whether ``n_tasks`` shards run in this process: one task, and no Dask backend."""
    from joblib.parallel import get_active_backend

    return n_tasks == 1 and "Dask" not in type(get_active_backend()[0]).__name__


def parse_shard(text):
    """``"I/N"`` (1-based, as Slurm array indices) -> ``(I, N)``.

    Examples
    --------
    >>> parse_shard("2/3")
    (2, 3)
    >>> parse_shard("0/3")
    Traceback (most recent call last):
    ...
    ValueError: shard '0/3' must be I/N with 1 <= I <= N, e.g. '1/3' for the first of 3 shards.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(
            f"shard {text!r} must be I/N with 1 <= I <= N, e.g. '1/3' for the first of 3 shards."
        )
    return int(match.group(1)), int(match.group(2))


def shard_range(n_samples, shard):
    """The contiguous samples ``range`` of shard ``(I, N)`` (1-based) of ``n_samples``.

    The N shards cover every sample once and differ in size by at most one.

    Examples
    --------
    >>> [list(shard_range(5, (i, 3))) for i in (1, 2, 3)]
    [[0], [1, 2], [3, 4]]
    """
    index, count = parse_shard(shard) if isinstance(shard, str) else shard
    if not 1 <= index <= count:
        raise ValueError(f"shard {shard!r} must be (I, N) with 1 <= I <= N.")
    return range((index - 1) * n_samples // count, index * n_samples // count)


def _feature_branches(pipeline):
    """The feature branches (image, cell) of a make_t25_pipeline pipeline."""
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(pipeline, Pipeline) and isinstance(pipeline.steps[0][1], FeatureUnion):
        return [branch for _, branch in pipeline.steps[0][1].transformer_list]
    raise TypeError(
        "extract takes a pipeline made by protloc.pipeline.make_t25_pipeline (its first "
        f"step is a FeatureUnion of feature branches), got {pipeline!r}."
    )


def extract(pipeline, images, *, shard=(1, 1)):
    """Compute the masks and features of one shard of ``images`` into the pipeline's cache.

    Every cached step of the feature branches (segmentation, CNN features) runs on
    the samples of shard ``I`` of ``N``, writing each sample to the ``cache=`` folder
    as it completes. Once every shard is done, fitting the same pipeline (same
    parameters, same cache, same images) reads all masks and features from the cache
    and builds no model. Nothing is returned: the cache is the output.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        An unfitted :func:`protloc.pipeline.make_t25_pipeline` with ``cache=`` set
        (a folder every shard can reach), ``random_state`` fixed when ``weights=None``.
    images : HPAImageSequence
        All the images (e.g. ``load_hpa(DIR, lazy=True).images``); only the shard's
        files are read.
    shard : (int, int) or str, default=(1, 1)
        ``(I, N)`` or ``"I/N"``: the I-th of N contiguous shards, 1-based like Slurm
        array indices.

    Returns
    -------
    n_samples : int
        How many samples the shard held.

    Examples
    --------
    >>> from protloc.io import load_hpa
    >>> from protloc.pipeline import make_t25_pipeline
    >>> pipe = make_t25_pipeline(cache="/shared/cache", weights="packaged")  # doctest: +SKIP
    >>> images = load_hpa("hpa/train", lazy=True).images  # doctest: +SKIP
    >>> extract(pipe, images, shard="3/100")  # doctest: +SKIP
    """
    from sklearn.base import clone

    branches = _feature_branches(pipeline)
    uncached = [
        type(step).__name__
        for branch in branches
        for _, step in getattr(branch, "steps", [(None, branch)])
        if hasattr(step, "cache") and step.cache is None
    ]
    if uncached:
        raise ValueError(
            f"extract stores its results in the pipeline's cache, but {uncached} have "
            "cache=None; build the pipeline with cache=<a folder every shard can reach>."
        )
    samples = shard_range(len(images), shard)
    part = images[samples.start : samples.stop]
    if len(part):
        for branch in branches:
            clone(branch).fit_transform(part)
    return len(part)


def extract_all(pipeline, images, *, n_shards, n_jobs=None):
    """Run :func:`extract` for shards ``1..n_shards`` through joblib (e.g. on Dask).

    Examples
    --------
    >>> import joblib  # doctest: +SKIP
    >>> from distributed import Client  # doctest: +SKIP
    >>> with Client("tcp://scheduler:8786"), joblib.parallel_config(backend="dask"):
    ...     extract_all(pipe, images, n_shards=100)  # doctest: +SKIP
    """
    # Each task gets only its shard's paths.
    parts = [shard_range(len(images), (i, n_shards)) for i in range(1, n_shards + 1)]
    tasks = [(pipeline, images[r.start : r.stop]) for r in parts]
    return sum(map_shards(_extract_task, tasks, n_jobs))


def _extract_task(pipeline, images):
    return extract(pipeline, images)
