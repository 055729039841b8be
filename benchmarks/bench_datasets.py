"""Speed of make_synthetic_hpa against reading real HPA images, in one process.

Baseline: ``load_hpa`` decoding the 100 real 512x512 4-channel PNG samples of
``../shared/data/hpa2018-sample`` (or ``$PROTLOC_HPA_SAMPLE``), the cost the synthetic
data replaces; when that folder is absent, filling a uint8 array of the same shape with
``Generator.integers`` (a floor no generator can beat). Best of 3 runs each.

Run: ``python benchmarks/bench_datasets.py``
"""

import os
import time
from pathlib import Path

import numpy as np

from protloc.datasets import make_synthetic_hpa
from protloc.io import load_hpa

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeat=3):
    """Best wall time and best CPU time of this process (less inflated by other jobs)."""
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main():
    env = os.environ.get("PROTLOC_HPA_SAMPLE")
    sample = Path(env) if env else ROOT.parent / "shared" / "data" / "hpa2018-sample"
    if (sample / "labels.csv").is_file():
        name = "load_hpa, 100 real 512x512 PNG samples"
        base, _ = best_of(lambda: load_hpa(sample / "images", sample / "labels.csv"))
    else:
        name = "Generator.integers, (100, 256, 256, 4) uint8"
        rng = np.random.default_rng(0)
        base, _ = best_of(lambda: rng.integers(0, 256, (100, 256, 256, 4), dtype=np.uint8))
    print(f"baseline: {name}: {base:.3f} s")
    cases = [
        ("100 x 256x256", {"n_samples": 100}),
        ("100 x 256x256, return_masks", {"n_samples": 100, "return_masks": True}),
        ("100 x 64x64", {"n_samples": 100, "image_size": 64}),
        ("100 x 512x512", {"n_samples": 100, "image_size": 512}),
    ]
    for label, kwargs in cases:
        t, cpu = best_of(lambda kw=kwargs: make_synthetic_hpa(random_state=0, **kw))
        print(f"make_synthetic_hpa {label}: {t:.3f} s wall ({cpu:.3f} s CPU), "
              f"{1000 * t / 100:.1f} ms/image, ratio to baseline {t / base:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
