"""Sharded CNN features (and Cellpose segmentation) serial vs a Dask LocalCluster.

Writes N synthetic fields as PNGs in the HPA layout, then times the same work three
ways, in this process and on the same files:

- serial (one process, torch limited to 1 thread so that it matches one worker);
- ``joblib.parallel_config(backend="dask")`` on a LocalCluster with 1 worker;
- the same on a LocalCluster with 2 workers (1 thread each).

and prints the ratios Dask-1 / serial (goal <= 1.10) and the 2-worker speed-up over
1 worker (goal >= 1.7 on a quiet 2-core machine). Clusters are started and warmed up
(imports, model builds) before the clock starts.

It then measures serial per-image costs of segmentation and of image- and cell-level
features (one backbone) and projects the wall time of the HPA 2018 training set
(31,072 images, 4 backbones, image and cell level) on this machine, and, as labelled
estimates, on 1 and 8 GPUs.

Usage::

    python benchmarks/bench_distributed.py                        # 200 images
    nice -n 10 python benchmarks/bench_distributed.py --n-images 24 --steps features
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
HPA2018_TRAIN = 31_072
CHANNELS = 4
BACKBONES = 4
# Nuclei (= cells) per real 512-px HPA image: mean over 20 sample images, measured by
# bench_segmentation.py (docs/benchmarks.md); synthetic fields have fewer, so the
# measured cell-level cost is scaled to this count.
HPA_CELLS_PER_IMAGE = 21.2
# Labelled assumptions for the GPU projection (not measured here): one data-centre GPU
# runs Cellpose 3 at ~0.15 s per 512-px image and a Lite-sized backbone at ~3,000
# network inputs (planes) per second in bf16 at 224 px.
GPU_SEG_S = 0.15
GPU_PLANES_PER_S = 3000.0


def write_pngs(folder, n, size):
    from protloc.datasets import make_synthetic_hpa
    from protloc.io import DEFAULT_CHANNELS

    X = make_synthetic_hpa(n, image_size=size, random_state=0)[0]
    for i, image in enumerate(X):
        for c, name in enumerate(DEFAULT_CHANNELS):
            Image.fromarray(image[..., c]).save(folder / f"s{i:05d}_{name}.png")


def make_steps(args, model_path):
    from protloc.features import CNNFeatureExtractor
    from protloc.segmentation import CellposeSegmenter

    steps = {}
    if "features" in args.steps:
        steps["features"] = CNNFeatureExtractor(
            args.backbone,
            weights=args.weights,
            image_size=args.image_size,
            device="cpu",
            precision="fp32",
            random_state=0,
            progress=False,
        )
    if "segmentation" in args.steps:
        steps["segmentation"] = CellposeSegmenter(
            model_path, diameter=args.diameter, device="cpu", progress=False
        )
    return steps


def timed(fn):
    tic = time.perf_counter()
    result = fn()
    return time.perf_counter() - tic, result


def run_all(steps, images, shard_size):
    """Seconds per step, and the outputs (to check that every way gives the same)."""
    times, outputs = {}, {}
    for name, step in steps.items():
        step = step.set_params(shard_size=shard_size)
        times[name], out = timed(lambda step=step: step.fit_transform(images))
        outputs[name] = out.nuclei if name == "segmentation" else out
    return times, outputs


def on_cluster(n_workers, steps, images, warm, shard_size):
    import joblib
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
        joblib.parallel_config(backend="dask"),
    ):
        run_all(steps, warm, 1)  # imports and one model build per worker, off the clock
        return run_all(steps, images, shard_size)


def per_image_costs(args, model_path, images):
    """Serial seconds per image: segmentation, image features, cell features (1 backbone)."""
    from sklearn.base import clone

    from protloc.features import CNNFeatureExtractor
    from protloc.regions import RegionCropper
    from protloc.segmentation import CellposeSegmenter

    # The first image of each step is a warm-up (imports, model build), off the clock.
    warm, images = images[:1], images[1:]
    n = len(images)
    ext = CNNFeatureExtractor(
        args.backbone,
        weights=args.weights,
        device="cpu",
        precision="fp32",
        random_state=0,
        progress=False,
    )
    ext.fit_transform(warm)
    t_image, _ = timed(lambda: ext.fit_transform(images))
    costs = {"image features / backbone": t_image / n}
    if model_path is not None:
        seg = CellposeSegmenter(model_path, diameter=args.diameter, device="cpu", progress=False)
        cropper = RegionCropper(crop_size=128)
        cell_ext = clone(ext).set_params(cell_pooling=("mean",))
        cell_ext.fit_transform(cropper.fit_transform(seg.fit_transform(warm)))
        t_seg, segmented = timed(lambda: seg.fit_transform(images))
        crops = cropper.fit_transform(segmented)
        t_cell, _ = timed(lambda: cell_ext.fit_transform(crops))
        costs["segmentation"] = t_seg / n
        costs["cell features / backbone"] = t_cell / n
        costs["cells per image"] = crops.n_cells / n
    return costs


def hours(seconds):
    return f"{seconds / 3600:8.1f} h ({seconds / 86400:.2f} days)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--png-size", type=int, default=256)
    parser.add_argument("--steps", default="features,segmentation")
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="None: random weights (same cost)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--diameter", type=float, default=36.0)
    parser.add_argument("--shard-size", type=int, default=None)
    parser.add_argument(
        "--cost-images", type=int, default=9, help="the first is a warm-up; 0 skips"
    )
    parser.add_argument("--cost-png-size", type=int, default=512)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    import torch

    model_path = Path(
        args.model
        or os.environ.get("PROTLOC_CELLPOSE_MODEL")
        or SHARED / "weights" / "cellpose3-scellseg.pth"
    )
    if not model_path.is_file():
        model_path = None
        args.steps = args.steps.replace("segmentation", "")
    warnings.filterwarnings("ignore", category=UserWarning)  # NoNucleiWarning on noise
    from protloc.io import load_hpa

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.n_images:  # 0 skips the three-way comparison
            folder = Path(tmp) / "images"
            folder.mkdir()
            write_pngs(folder, args.n_images, args.png_size)
            images = load_hpa(folder, lazy=True).images
            warm = images[:2]
            steps = make_steps(args, model_path)
            print(
                f"{args.n_images} synthetic {args.png_size}-px fields (PNG), steps {list(steps)}, "
                f"{args.backbone} at {args.image_size} px (fp32), shard_size={args.shard_size}"
            )
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # the serial run gets what one worker gets
            run_all(steps, warm, None)
            t_serial, reference = run_all(steps, images, args.shard_size)
            torch.set_num_threads(threads)
            t_one, out_one = on_cluster(1, steps, images, warm, args.shard_size)
            t_two, out_two = on_cluster(2, steps, images, warm, args.shard_size)
            for name in steps:
                same = np.array_equal(out_one[name], reference[name]) and np.array_equal(
                    out_two[name], reference[name]
                )
                print(
                    f"{name:13s} serial {t_serial[name]:7.1f} s | Dask 1 worker {t_one[name]:7.1f} s"
                    f" | Dask 2 workers {t_two[name]:7.1f} s | Dask-1/serial "
                    f"{t_one[name] / t_serial[name]:.2f} (goal <= 1.10) | 2-worker speed-up "
                    f"{t_one[name] / t_two[name]:.2f}x (goal >= 1.7) | identical: {same}"
                )

        if args.cost_images:
            cost_folder = Path(tmp) / "cost"
            cost_folder.mkdir()
            write_pngs(cost_folder, args.cost_images, args.cost_png_size)
            costs = per_image_costs(args, model_path, load_hpa(cost_folder, lazy=True).images)
            print(
                f"serial per-image costs on {args.cost_images - 1} {args.cost_png_size}-px fields "
                "after a warm-up one "
                f"({torch.get_num_threads()} torch threads, {args.backbone} at its own size):"
            )
            for name, value in costs.items():
                print(f"  {name:28s} {value:7.2f}" + ("" if "cells" in name else " s"))
            cells = costs.get("cells per image", 0.0)
            cell_cost = costs.get("cell features / backbone", 0.0)
            if cells:
                cell_cost *= HPA_CELLS_PER_IMAGE / cells  # as many cells as real HPA images
            per_image = costs.get("segmentation", 0.0) + BACKBONES * (
                costs["image features / backbone"] + cell_cost
            )
            cpu = HPA2018_TRAIN * per_image
            print(
                f"projection, HPA 2018 train ({HPA2018_TRAIN} images, {BACKBONES} backbones, "
                f"image + cell level, {HPA_CELLS_PER_IMAGE} cells per image):"
            )
            print(f"  one 2-core machine (measured costs)  : {hours(cpu)}")
            planes = BACKBONES * CHANNELS * (1 + 3 * HPA_CELLS_PER_IMAGE)  # 3 regions
            gpu_per_image = GPU_SEG_S + planes / GPU_PLANES_PER_S
            print(
                f"  1 GPU  (ESTIMATE: Cellpose {GPU_SEG_S} s/image, {GPU_PLANES_PER_S:.0f} "
                f"planes/s, {planes:.0f} planes/image): {hours(HPA2018_TRAIN * gpu_per_image)}"
            )
            print(
                "  8 GPUs (ESTIMATE: 8 Dask workers, one per GPU, linear): "
                f"{hours(HPA2018_TRAIN * gpu_per_image / 8)}"
            )
    print(f"load at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
