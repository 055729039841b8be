"""Benchmark CellposeSegmenter on real HPA images against raw ``CellposeModel.eval``.

Prints, for the same images and the same real Cellpose model:

- time per image through ``CellposeSegmenter`` (nuclei + watershed cells + label
  pairing + cache writes) against ``CellposeModel.eval`` on the nucleus channel
  alone, measured batch by batch in alternation so that load on a shared machine
  hits both alike (goal: overhead <= 5%);
- a re-run served from the cache, from arrays and from the lazy PNG folder
  (goal: >= 50x faster than segmenting);
- nuclei per image.

Run from the project root::

    python benchmarks/bench_segmentation.py --n-images 10

The data and the model are found as the tests find them: ``PROTLOC_HPA_SAMPLE`` /
``PROTLOC_CELLPOSE_MODEL`` or ``../shared/...``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _paths(args):
    data = Path(
        args.data or os.environ.get("PROTLOC_HPA_SAMPLE") or SHARED / "data" / "hpa2018-sample"
    )
    model = Path(
        args.model
        or os.environ.get("PROTLOC_CELLPOSE_MODEL")
        or SHARED / "weights" / "cellpose3-scellseg.pth"
    )
    if not (data / "labels.csv").is_file():
        raise SystemExit(f"HPA sample not found at {data}; set PROTLOC_HPA_SAMPLE.")
    if not model.is_file():
        raise SystemExit(f"Cellpose model not found at {model}; set PROTLOC_CELLPOSE_MODEL.")
    return data, model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--diameter", type=float, default=60.0)
    parser.add_argument("--data", default=None)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    data_dir, model_path = _paths(args)

    from cellpose import models

    from protloc.io import load_hpa
    from protloc.segmentation import CellposeSegmenter
    from protloc.segmentation._cellpose import _quiet_cellpose

    data = load_hpa(data_dir / "images", data_dir / "labels.csv", lazy=True)
    lazy = data.images[: args.n_images]
    X = lazy.load()
    n, bs = len(X), args.batch_size
    print(
        f"{n} real HPA images {X.shape[1]}x{X.shape[2]}, diameter={args.diameter}, "
        f"model={model_path.name}, torch threads={__import__('torch').get_num_threads()}"
    )

    raw = models.CellposeModel(gpu=False, pretrained_model=str(model_path))
    cache_dir = tempfile.mkdtemp(prefix="bench-seg-")
    seg = CellposeSegmenter(
        model_path, diameter=args.diameter, batch_size=bs, cache=cache_dir, progress=False
    ).fit(X)
    # Warm up both (network build, mkldnn and allocator first-use costs) on another image.
    warm = data.images[n : n + 1].load()
    with _quiet_cellpose():
        raw.eval([warm[0, ..., 2]], channels=[0, 0], diameter=args.diameter, batch_size=bs)
    seg.set_params(cache=None).transform(warm)
    seg.set_params(cache=cache_dir)

    t_raw = t_seg = 0.0
    for start in range(0, n, bs):
        batch = X[start : start + bs]
        tic = time.perf_counter()
        with _quiet_cellpose():
            raw.eval([im[..., 2] for im in batch], channels=[0, 0], diameter=args.diameter,
                     batch_size=bs)  # fmt: skip
        t_raw += time.perf_counter() - tic
        tic = time.perf_counter()
        out = seg.transform(batch)
        t_seg += time.perf_counter() - tic
        print(
            f"  images {start}-{start + len(batch) - 1}: raw {t_raw:.1f} s, segmenter {t_seg:.1f} s"
        )

    tic = time.perf_counter()
    cached = seg.transform(X)
    t_cached = time.perf_counter() - tic
    tic = time.perf_counter()
    cached_lazy = seg.transform(lazy)
    t_cached_lazy = time.perf_counter() - tic
    assert np.array_equal(cached.nuclei, cached_lazy.nuclei)
    counts = cached.n_objects

    overhead = t_seg / t_raw - 1
    print()
    print(f"raw CellposeModel.eval (nuclei only): {t_raw / n:8.2f} s/image")
    print(f"CellposeSegmenter (nuclei + cells):   {t_seg / n:8.2f} s/image")
    print(f"overhead vs raw eval:                 {100 * overhead:+8.1f} %   (goal <= +5 %)")
    print(
        f"cached re-run, arrays:                {1000 * t_cached / n:8.2f} ms/image, "
        f"{t_seg / t_cached:,.0f}x faster   (goal >= 50x)"
    )
    print(
        f"cached re-run, lazy PNG folder:       {1000 * t_cached_lazy / n:8.2f} ms/image, "
        f"{t_seg / t_cached_lazy:,.0f}x faster"
    )
    print(
        f"nuclei per image: mean {counts.mean():.1f}, median {np.median(counts):.0f}, "
        f"min {counts.min()}, max {counts.max()}"
    )
    del out


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        main()
