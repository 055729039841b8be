"""Training and inference throughput of CNNClassifier and FCNClassifier (images/s).

For each network and setting, the estimator's ``fit`` (one epoch, augmentation on)
and ``predict_proba`` are timed on synthetic 4-channel uint8 images, and so is a bare
torch loop over the same network on pre-made tensors, in the same process. The
ratio estimator / bare loop is the figure to trust on a busy machine: it shows what
the estimator's data path (per-sample scaling and resizing, augmentation,
DataLoader) costs on top of the network itself (1.0 = no overhead).

Runs on the CPU, and also on the GPU when CUDA is available.

Usage::

    python benchmarks/bench_nets.py            # default and reduced settings
    python benchmarks/bench_nets.py --quick    # reduced setting only
    python benchmarks/bench_nets.py --threads 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from protloc._torch import autocast_dtype
from protloc.nets import CNNClassifier, FCNClassifier
from protloc.nets._models import build_network, pool_maps

SETTINGS = {
    # name: (image_size, width, depth, images timed)
    "default (256 px, width 32, depth 10)": (256, 32, 10, 16),
    "reduced (128 px, width 16, depth 8)": (128, 16, 8, 32),
}
BATCH = 16


def _images(n, size, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 255, size=(n, size, size, 4), dtype=np.uint8)
    Y = rng.integers(0, 2, size=(n, 11))
    Y[:, 0] = 1 - Y[:, 1]  # every class both present and absent
    return X, Y


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_loop(kind, size, width, depth, n, device, *, train):
    """Images/s of the network alone: tensors already on the device, no augmentation.

    Uses the estimators' default precision (bf16/fp16 autocast on CUDA, fp32 on CPU);
    fp16 would also need a GradScaler, which this loop skips.
    """
    module = build_network(
        kind,
        n_channels=4,
        n_outputs=11,
        width=width,
        depth=depth,
        generator=torch.Generator().manual_seed(0),
    ).to(device)
    x = torch.rand(BATCH, 4, size, size, device=device)
    y = torch.randint(0, 2, (BATCH, 11), device=device).float()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)

    amp = autocast_dtype("auto", device)  # what the estimators use by default

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = module(x)
            if kind == "fcn":
                out = pool_maps(out, "lse", 5.0)
        if train:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    module.train(train)
    with torch.set_grad_enabled(train):
        step()  # warm-up: allocator, kernels
        _sync(device)
        start = time.perf_counter()
        for _ in range(max(1, n // BATCH)):
            step()
        _sync(device)
    return max(1, n // BATCH) * BATCH / (time.perf_counter() - start)


def estimator_rates(Estimator, size, width, depth, n, device):
    X, Y = _images(n, size)
    clf = Estimator(
        image_size=size,
        width=width,
        depth=depth,
        epochs=1,
        batch_size=BATCH,
        early_stopping=False,
        progress=False,
        device=str(device),
        random_state=0,
    )
    clf.fit(X[:BATCH], Y[:BATCH])  # warm-up
    start = time.perf_counter()
    clf.fit(X, Y)
    _sync(device)
    train = n / (time.perf_counter() - start)
    clf.predict_proba(X[:BATCH])
    start = time.perf_counter()
    clf.predict_proba(X)
    _sync(device)
    infer = n / (time.perf_counter() - start)
    return train, infer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced setting only")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    settings = dict(list(SETTINGS.items())[1:]) if args.quick else SETTINGS
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {BATCH}")
    print(
        f"{'device':6} {'network':4} {'setting':38} {'train img/s':>11} {'bare':>8} "
        f"{'ratio':>6} {'infer img/s':>11} {'bare':>8} {'ratio':>6}"
    )
    for device in devices:
        for name, (size, width, depth, n) in settings.items():
            if device.type == "cuda":
                n *= 8
            for kind, Estimator in (("cnn", CNNClassifier), ("fcn", FCNClassifier)):
                # Interleaved repeats, best of each: load from other processes only
                # ever slows a run down, so the maximum is the least disturbed one.
                runs = []
                for _ in range(args.repeats):
                    train, infer = estimator_rates(Estimator, size, width, depth, n, device)
                    bare_train = bare_loop(kind, size, width, depth, n, device, train=True)
                    bare_infer = bare_loop(kind, size, width, depth, n, device, train=False)
                    runs.append((train, bare_train, infer, bare_infer))
                train, bare_train, infer, bare_infer = np.max(runs, axis=0)
                print(
                    f"{device.type:6} {kind:4} {name:38} {train:11.1f} {bare_train:8.1f} "
                    f"{train / bare_train:6.2f} {infer:11.1f} {bare_infer:8.1f} "
                    f"{infer / bare_infer:6.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
