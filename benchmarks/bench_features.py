"""Speed and memory of CNNFeatureExtractor against a raw forward pass and a naive loop.

Prints, in one run on the same images:

(a) the pure model forward time over the preprocessed batch tensors;
(b) protloc end to end from PNG files (decode, resize, normalise, forward, gather);
(c) a naive baseline: a per-image, per-channel loop of PIL open + PIL resize + a
    forward pass of one plane through the same timm model (created once);

then ``b/a`` (goal on CPU <= 1.15) and ``c/b`` (goal >= 2), and the peak RSS of
extracting features for N synthetic images in a fresh subprocess per N (goal <= 2 GiB
and flat in N). Ratios come from the same process and the same images, so they hold
on a shared, noisy machine where absolute times do not.

Usage::

    python benchmarks/bench_features.py
    python benchmarks/bench_features.py --skip-speed --threads 1 --rss-sizes 2000 10000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHANNELS = ("red", "green", "blue", "yellow")


def synthetic_pngs(folder, n, size, channels, seed=0):
    """Blobs on noise, one 8-bit PNG per channel, HPA file layout."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    for i in range(n):
        for channel in channels:
            plane = rng.normal(20, 5, (size, size))
            for r0, c0, radius in rng.uniform(0, size, (6, 3)) * [1, 1, 0.05]:
                plane += 150 * np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / (2 * radius**2 + 1))
            Image.fromarray(np.clip(plane, 0, 255).astype(np.uint8)).save(
                folder / f"s{i:05d}_{channel}.png"
            )


def packaged_or_random(backbone):
    from protloc.features import PACKAGED_WEIGHTS

    entry = PACKAGED_WEIGHTS.get(backbone)
    if entry is not None and importlib.util.find_spec(entry.module) is not None:
        return "packaged"
    return None


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def speed(args):
    import timm
    import torch

    from protloc import load_hpa
    from protloc.features import CNNFeatureExtractor

    weights = packaged_or_random(args.backbone)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthetic_pngs(folder, args.n_images, args.png_size, CHANNELS)
        seq = load_hpa(folder, lazy=True).images
        ext = CNNFeatureExtractor(
            args.backbone,
            weights=weights,
            image_size=args.image_size,
            batch_size=args.batch_size,
            device=args.device,
            precision=args.precision,
            progress=False,
            random_state=0,
        ).fit(seq)
        rt = ext._get_runtimes()[0]
        model, S = rt.model, rt.image_size
        print(
            f"backbone={args.backbone} weights={weights or 'random'} image_size={S} "
            f"images={args.n_images}x{args.png_size}px x {len(CHANNELS)} channels "
            f"batch_size={args.batch_size} device={args.device} autocast={rt.amp} "
            f"torch_threads={torch.get_num_threads()}"
        )

        # (a) the same batches protloc builds, preprocessed beforehand
        images = seq.load()
        per_image = len(CHANNELS)
        step = args.batch_size  # images per forward pass, as CNNFeatureExtractor counts
        batches = [
            rt.planes([(0, [images[a : a + step]])], 1, per_image, rt.device)
            for a in range(0, len(images), step)
        ]

        def amp():  # the autocast protloc uses (bf16 on CUDA by default)
            if rt.amp is None:
                return torch.autocast(rt.device.type, enabled=False)
            return torch.autocast(rt.device.type, dtype=rt.amp)

        def forward_only():
            with torch.inference_mode(), amp():
                for x in batches:
                    model.forward_head(model.forward_features(x), pre_logits=True)
            if rt.device.type == "cuda":
                torch.cuda.synchronize()

        # (b) end to end from the PNG files
        def end_to_end():
            return ext.transform(seq)

        # (c) naive loop: PIL decode + PIL resize + one plane per forward
        naive_model = timm.create_model(args.backbone, num_classes=model.num_classes)
        naive_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
        naive_model.eval()
        mean = torch.tensor(rt.mean)[:, None, None]
        std = torch.tensor(rt.std)[:, None, None]

        def naive():
            rows = []
            for paths in seq.paths:
                row = []
                for path in paths:
                    with Image.open(path) as handle:
                        plane = np.asarray(handle.resize((S, S), Image.BICUBIC), np.float32)
                    x = (torch.from_numpy(plane / 255)[None] - mean) / std
                    with torch.no_grad():
                        f = naive_model.forward_head(
                            naive_model.forward_features(x[None]), pre_logits=True
                        )
                    row.append(f[0].numpy())
                rows.append(np.concatenate(row))
            return np.stack(rows)

        forward_only()  # warm-up (allocator, oneDNN primitives)
        t_a, t_b, t_c = [], [], []
        for _ in range(args.repeats):  # interleaved, so load changes hit all three alike
            t_a.append(best_of(1, forward_only)[0])
            tb, features = best_of(1, end_to_end)
            t_b.append(tb)
        t_c, reference = best_of(1, naive) if not args.skip_naive else (float("nan"), None)
        a, b = min(t_a), min(t_b)
        # each (a, b) pair ran back to back: the median of their ratios resists load drift
        paired = float(np.median(np.array(t_b) / np.array(t_a)))
        planes = len(images) * per_image
        gap = (
            float("nan")
            if reference is None
            else np.abs(features - reference).max() / np.abs(reference).max()
        )
        print(f"(a) model forward only     : {a:8.2f} s  ({planes / a:7.1f} planes/s)")
        print(f"(b) protloc end to end PNG : {b:8.2f} s  ({planes / b:7.1f} planes/s)")
        print(f"(c) naive per-plane loop   : {t_c:8.2f} s  ({planes / t_c:7.1f} planes/s)")
        print(
            f"b/a = {b / a:.3f} (best times), {paired:.3f} (median of paired runs)  (goal <= 1.15)"
        )
        print(f"a/b = {a / b:.3f}  (end to end / raw model throughput; GPU goal >= 0.80)")
        print(f"c/b = {t_c / b:.2f}    (goal >= 2)")
        print(f"max |b - c| / max |c| = {gap:.3g} (PIL vs torch resampling)")


def rss_child(args):
    from protloc import load_hpa
    from protloc.features import CNNFeatureExtractor

    ids = [f"s{i:05d}" for i in range(args.rss_child)]
    seq = load_hpa(args.folder, ids=ids, channels=("green",), lazy=True).images
    ext = CNNFeatureExtractor(
        args.backbone,
        weights=packaged_or_random(args.backbone),
        image_size=args.rss_image_size,
        # One channel here: as many network inputs per pass as the 4-channel runs.
        batch_size=args.batch_size * len(CHANNELS),
        device="cpu",
        progress=False,
        random_state=0,
    ).fit(seq)
    after_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = np.lib.format.open_memmap(
        Path(args.folder) / f"out{args.rss_child}.npy",
        "w+",
        np.float32,
        (len(seq), ext.feature_blocks_[-1].slice.stop),
    )
    start = time.perf_counter()
    ext.transform(seq, out=out)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "n": len(seq),
                "after_fit_kib": after_fit,
                "peak_kib": peak,
                "seconds": elapsed,
                "out_mib": out.nbytes / 2**20,
            }
        )
    )


def rss(args):
    sizes = sorted(args.rss_sizes)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_pngs(Path(tmp), sizes[-1], args.rss_png_size, ("green",), seed=1)
        print(
            f"peak RSS, fresh subprocess per N: {args.backbone} image_size={args.rss_image_size}, "
            f"green channel of {args.rss_png_size}px PNGs, output to an np.memmap"
        )
        rows = []
        for n in sizes:
            cmd = [
                sys.executable,
                __file__,
                "--rss-child",
                str(n),
                "--folder",
                tmp,
                "--backbone",
                args.backbone,
                "--rss-image-size",
                str(args.rss_image_size),
                "--batch-size",
                str(args.batch_size),
            ]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"N={row['n']:6d}: peak RSS {row['peak_kib'] / 2**10:7.1f} MiB (after fit "
                f"{row['after_fit_kib'] / 2**10:7.1f} MiB), output {row['out_mib']:.1f} MiB, "
                f"{row['seconds']:.1f} s"
            )
        growth = (rows[-1]["peak_kib"] - rows[0]["peak_kib"]) / 2**10
        print(f"peak RSS growth from N={sizes[0]} to N={sizes[-1]}: {growth:+.1f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--n-images", type=int, default=16)
    parser.add_argument("--png-size", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16, help="images per pass")
    parser.add_argument("--device", default="cpu", help='"cpu", "cuda", "cuda:N"')
    parser.add_argument("--precision", default="auto", help="autocast: auto, fp32, bf16, fp16")
    parser.add_argument(
        "--skip-naive", action="store_true", help="skip (c), the slow CPU per-plane loop"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: torch's own choice)"
    )
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=[2000, 10000])
    parser.add_argument("--rss-image-size", type=int, default=32)
    parser.add_argument("--rss-png-size", type=int, default=64)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args)
        return
    if not args.skip_speed:
        speed(args)
    if args.rss_sizes:
        rss(args)


if __name__ == "__main__":
    main()
