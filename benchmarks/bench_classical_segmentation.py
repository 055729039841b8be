"""Benchmark WatershedSegmenter against CellposeSegmenter on the real HPA images.

Prints, on the real HPA sample (100 images of 512x512) with the real Cellpose 3 model
(``cellpose3-scellseg.pth``, ``diameter=60``, watershed cells) as the reference:

- nucleus-matching F1 at IoU 0.5 between the two segmenters' nuclei, pooled over all
  images (a pair of nuclei matches when their IoU exceeds 0.5, which makes matches
  one-to-one), for each ``--diameters`` value of WatershedSegmenter (goal >= 0.85);
- nuclei per image (mean, median) for both;
- time per image, nuclei and cells together, of both segmenters on the last
  ``--n-timed`` images, measured in this process without any cache, batch by batch
  in alternating order so that drifting load on a shared machine hits both, and
  their ratio (goal: WatershedSegmenter >= 20x faster).

Cellpose's masks of the timed images are the reference for them; those of the other
images come through ``--cellpose-cache`` (a mask cache folder), so that re-runs skip
the slow part. The timed runs never use a cache.

Run from the project root::

    python benchmarks/bench_classical_segmentation.py --cellpose-cache /tmp/cp-cache

The data and the model are found as the tests find them: ``PROTLOC_HPA_SAMPLE`` /
``PROTLOC_CELLPOSE_MODEL`` or ``../shared/...``.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import warnings
from datetime import datetime, timezone

import numpy as np

# The same data and model look-up as the Cellpose benchmark beside this script.
from bench_segmentation import _paths


def match_counts(reference, other, threshold=0.5):
    """Matched pairs (IoU > threshold) between two label images, and both object counts."""
    n_ref, n_other = int(reference.max()), int(other.max())
    if n_ref == 0 or n_other == 0:
        return 0, n_ref, n_other
    overlap = np.bincount(
        reference.ravel().astype(np.int64) * (n_other + 1) + other.ravel(),
        minlength=(n_ref + 1) * (n_other + 1),
    ).reshape(n_ref + 1, n_other + 1)
    area_ref, area_other = overlap.sum(axis=1), overlap.sum(axis=0)
    inter = overlap[1:, 1:]
    iou = inter / (area_ref[1:, None] + area_other[None, 1:] - inter)
    # IoU > 0.5 can hold for at most one partner on each side: no assignment needed.
    return int((iou > threshold).sum()), n_ref, n_other


def pooled_f1(references, others):
    counts = np.array([match_counts(r, o) for r, o in zip(references, others)])
    matched, n_ref, n_other = counts.sum(axis=0)
    per_image = 2 * counts[:, 0] / np.maximum(counts[:, 1] + counts[:, 2], 1)
    return 2 * matched / (n_ref + n_other), float(np.median(per_image))


def _uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=None, help="first images only")
    parser.add_argument("--n-timed", type=int, default=8, help="images timed without cache")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cellpose-diameter", type=float, default=60.0)
    parser.add_argument(
        "--diameters",
        nargs="+",
        default=["60", "none"],
        help="WatershedSegmenter diameters to score ('none' estimates per image)",
    )
    parser.add_argument("--threshold-method", default="li")
    parser.add_argument("--cellpose-cache", default=None, help="mask cache for the reference")
    parser.add_argument("--data", default=None)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    data_dir, model_path = _paths(args)

    import torch

    from protloc.io import load_hpa
    from protloc.segmentation import CellposeSegmenter, NoNucleiWarning, WatershedSegmenter

    print(f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"load before: {_uptime()}")
    data = load_hpa(data_dir / "images", data_dir / "labels.csv", lazy=True)
    X = data.images[: args.n_images].load()
    n = len(X)
    print(
        f"{n} real HPA images {X.shape[1]}x{X.shape[2]}, Cellpose model={model_path.name} "
        f"diameter={args.cellpose_diameter}, torch threads={torch.get_num_threads()}"
    )
    diameters = [None if d.lower() == "none" else float(d) for d in args.diameters]
    # Cache keys hash the parameters as given: 60 and 60.0 are different entries.
    cp_diameter = args.cellpose_diameter
    cp_diameter = int(cp_diameter) if cp_diameter.is_integer() else cp_diameter

    def cellpose(cache):
        return CellposeSegmenter(
            model_path,
            diameter=cp_diameter,
            cell_method="watershed",
            batch_size=args.batch_size,
            cache=cache,
            progress=False,
        )

    def watershed(diameter):
        return WatershedSegmenter(
            diameter=diameter,
            threshold_method=args.threshold_method,
            batch_size=args.batch_size,
            progress=False,
        )

    warnings.simplefilter("ignore", NoNucleiWarning)
    # Speed first, nuclei and cells together, no cache, on the last --n-timed images;
    # Cellpose's masks of this run are the reference for those images.
    timed = np.arange(n - args.n_timed, n)
    warm = X[:1, :128, :128]  # builds the network, first-use allocator and mkldnn costs
    cp, ws = cellpose(None).fit(warm), watershed(diameters[0]).fit(warm)
    cp.transform(warm)
    ws.transform(warm)
    t_cp = t_ws = 0.0
    timed_nuclei = []
    for b, start in enumerate(range(0, len(timed), args.batch_size)):
        batch = X[timed[start : start + args.batch_size]]
        order = (("cp", cp), ("ws", ws)) if b % 2 == 0 else (("ws", ws), ("cp", cp))
        for which, seg in order:
            tic = time.perf_counter()
            out = seg.transform(batch)
            elapsed = time.perf_counter() - tic
            if which == "cp":
                t_cp += elapsed
                timed_nuclei.extend(out.nuclei)
            else:
                t_ws += elapsed
    m = len(timed)
    print(f"\nTime per image, nuclei + cells, no cache, last {m} images, alternating batches:")
    print(f"  CellposeSegmenter   {t_cp / m:8.3f} s")
    print(f"  WatershedSegmenter  {t_ws / m:8.3f} s  (diameter={diameters[0]})")
    print(f"  speed ratio         {t_cp / t_ws:8.1f}x  (goal >= 20x)")

    tic = time.perf_counter()
    rest = cellpose(args.cellpose_cache).fit_transform(X[: n - m])
    print(
        f"\nCellpose reference masks of the other {n - m} images: "
        f"{time.perf_counter() - tic:.0f} s "
        f"({'through cache ' + args.cellpose_cache if args.cellpose_cache else 'no cache'})"
    )
    reference = list(rest.nuclei) + timed_nuclei
    ref_counts = np.array([int(r.max()) for r in reference])

    print(f"\nNucleus matching against Cellpose (IoU > 0.5), all {n} images:")
    print(f"  {'segmenter':34s} {'F1 pooled':>9s} {'F1 median':>9s} {'nuclei mean':>11s} "
          f"{'median':>6s} {'s/image':>8s}")  # fmt: skip
    print(
        f"  {'CellposeSegmenter (reference)':34s} {'':>9s} {'':>9s} "
        f"{ref_counts.mean():11.1f} {np.median(ref_counts):6.1f}"
    )
    for diameter in diameters:
        seg = watershed(diameter)
        tic = time.perf_counter()
        out = seg.fit_transform(X)
        per_image = (time.perf_counter() - tic) / n
        f1, f1_median = pooled_f1(reference, out.nuclei)
        counts = out.n_objects
        name = f"WatershedSegmenter(diameter={diameter})"
        print(
            f"  {name:34s} {f1:9.3f} {f1_median:9.3f} {counts.mean():11.1f} "
            f"{np.median(counts):6.1f} {per_image:8.3f}"
        )
    print(f"load after: {_uptime()}")


if __name__ == "__main__":
    main()
