"""CNN and FCN classifiers trained end to end on multi-channel images.

Liimatainen, Huttunen, Latonen and Ruusuvuori (Biomolecules 11:264, 2021) compare a
CNN with a dense classifier and a fully convolutional network (FCN) of similar depth,
trained directly on the fluorescence channels; the FCN did better on images with
several localizations, and its class maps show where each pattern lies.
"""

from __future__ import annotations

import io
import os
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.metrics import f1_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from protloc._cache import cache_key, hash_array
from protloc._containers import DEFAULT_CHANNELS, HPAImageSequence
from protloc._params import (
    cache_folder,
    fill_shared_docs,
    fit_device,
    runtime_device,
    seeds,
    shared_constraints,
    worker_count,
)
from protloc._torch import autocast_dtype, import_torch
from protloc._validation import channel_names, check_images, check_target
from protloc._validation import resolve_channels as _resolve_channels
from protloc.multilabel._thresholds import _tune, _warn_undecidable
from protloc.nets._losses import balanced_weights, multiclass_loss, multilabel_loss
from protloc.nets._models import (
    ImageDataset,
    augment_batch,
    build_network,
    check_image_size,
    collate_images,
    pool_maps,
    receptive_field,
)

__all__ = ["CNNClassifier", "FCNClassifier"]


def _validation_thresholds(y_val, proba):
    """Per-class F1-best thresholds on the validation split.

    :func:`protloc.multilabel.tune_thresholds` without its warning, which ``fit``
    gives once rather than every epoch: a class with fewer than 2 positive or no
    negative validation sample cannot be tuned, and a net must still decide that
    class on new images, so it keeps 0.5 there.

    Examples
    --------
    >>> Y = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    >>> P = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.4]])
    >>> _validation_thresholds(Y, P).tolist()
    [0.75, 0.5]
    """
    return _tune(np.asarray(y_val), np.asarray(proba, dtype=np.float64), fallback=0.5)


def _validation_split(n_samples, fraction, rng):
    n_val = round(fraction * n_samples)
    if n_val < 1 or n_samples - n_val < 1:
        raise ValueError(
            f"validation_fraction={fraction} of {n_samples} samples leaves no validation or "
            "no training sample; pass more samples, change validation_fraction, or set "
            "early_stopping=False and threshold to a number."
        )
    order = rng.permutation(n_samples)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class _NetClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit/predict machinery of :class:`CNNClassifier` and :class:`FCNClassifier`."""

    _kind = None

    _parameter_constraints: ClassVar[dict] = {
        "channels": [None, str, Integral, "array-like"],
        "image_size": [Interval(Integral, 1, None, closed="left"), None],
        "width": [Interval(Integral, 1, None, closed="left")],
        "depth": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "loss": [StrOptions({"bce", "focal"})],
        "focal_gamma": [Interval(Real, 0, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), None],
        "threshold": [Interval(Real, 0, 1, closed="neither"), StrOptions({"validation"})],
        "augment": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        **shared_constraints(
            "batch_size", "device", "precision", "n_jobs", "random_state", "progress", "checkpoint"
        ),
    }

    def __init__(
        self,
        *,
        channels=DEFAULT_CHANNELS,
        image_size=256,
        width=32,
        depth=10,
        epochs=30,
        batch_size=32,
        lr=1e-3,
        weight_decay=1e-4,
        loss="bce",
        focal_gamma=2.0,
        class_weight=None,
        threshold=0.5,
        augment=True,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=5,
        warm_start=False,
        device="auto",
        precision="auto",
        n_jobs=None,
        random_state=None,
        progress=True,
        checkpoint=None,
    ):
        self.channels = channels
        self.image_size = image_size
        self.width = width
        self.depth = depth
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.class_weight = class_weight
        self.threshold = threshold
        self.augment = augment
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.device = device
        self.precision = precision
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress
        self.checkpoint = checkpoint

    # ------------------------------------------------------------------ input checks
    def _check_X(self, X, *, reset):
        if sp.issparse(X):
            raise TypeError(
                "X is a sparse matrix, and sparse input is not supported; pass images as a "
                "dense (n, rows, cols, channels) array or an HPAImageSequence."
            )
        X = check_images(X, allow_lazy=True)
        lazy = isinstance(X, HPAImageSequence)
        n_channels = len(X.channels) if lazy else X.shape[-1]
        name = type(self).__name__
        if reset:
            self.n_channels_in_ = n_channels
        elif n_channels != self.n_channels_in_:
            raise ValueError(
                f"X has {n_channels} channels, but {name} was fitted on images with "
                f"{self.n_channels_in_}; pass images with the channels used in fit."
            )
        positions, names = _resolve_channels(self.channels, channel_names(X, n_channels))
        # After fit, the fitted network's field counts, even if depth was changed since.
        field = receptive_field(self.depth) if reset else self.receptive_field_
        if self.image_size is not None and self.image_size < field:
            raise ValueError(
                f"image_size={self.image_size} is smaller than the receptive field "
                f"({field} px) of a depth={self.depth} network; raise image_size or lower "
                "depth."
            )
        if not lazy:
            check_image_size(X.shape[1:3], field)
        return X, positions, names

    def _check_y(self, y):
        y, multilabel = check_target(y, estimator_name=type(self).__name__)
        if multilabel:
            Y = y.astype(np.float32)
            return Y, np.arange(Y.shape[1]), True
        check_classification_targets(y)
        kind = type_of_target(y, input_name="y")
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"y of type {kind!r} is not supported; pass a 0/1 indicator matrix "
                "(n_samples, n_classes) for multi-label data or a 1-d array of class labels."
            )
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y has only one class ({classes[0]!r}); a classifier needs at least 2 classes."
            )
        return encoded.astype(np.int64), classes, False

    # ------------------------------------------------------------------ torch helpers
    def _network_config(self, n_channels, n_outputs):
        return {
            "kind": self._kind,
            "n_channels": n_channels,
            "n_outputs": n_outputs,
            "width": self.width,
            "depth": self.depth,
            "pooling": getattr(self, "pooling", None),
            "lse_sharpness": getattr(self, "lse_sharpness", None),
        }

    def _build_module(self, generator):
        config = self._network_config_
        return build_network(
            config["kind"],
            n_channels=config["n_channels"],
            n_outputs=config["n_outputs"],
            width=config["width"],
            depth=config["depth"],
            generator=generator,
        )

    def _scores(self, module, x):
        """Image-level logits ``(n, n_outputs)``."""
        return module(x)

    def _loader(self, dataset, *, shuffle, generator=None, device=None):
        torch = import_torch()
        # n_jobs workers decode samples in parallel; one worker is the main process.
        workers = worker_count(self.n_jobs)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=0 if workers == 1 else workers,
            collate_fn=collate_images,
            pin_memory=device is not None and device.type == "cuda",
        )

    def _infer(self, dataset, device, fn):
        """Apply ``fn(module, batch)`` to every batch in eval mode; concatenated numpy."""
        torch = import_torch()
        module = self.module_.to(device)
        module.eval()
        amp = autocast_dtype(self.precision, device)
        out = []
        with torch.inference_mode():
            for xb in self._loader(dataset, shuffle=False, device=device):
                if isinstance(xb, (list, tuple)):
                    xb = xb[0]
                xb = xb.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    result = fn(module, xb)
                out.append(result.float().cpu().numpy())
        return np.concatenate(out, axis=0)

    def _proba_from_logits(self, logits):
        if self.multilabel_:
            return 1.0 / (1.0 + np.exp(-logits))
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def _predict_from_proba(self, proba, thresholds):
        if self.multilabel_:
            return (proba >= thresholds).astype(np.int64)
        return proba.argmax(axis=1)

    def _macro_f1(self, y_true, pred):
        labels = np.arange(len(self.classes_))
        if self.multilabel_:
            return f1_score(y_true, pred, average="macro", zero_division=0)
        return f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network on images ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, rows, cols, channels) or HPAImageSequence
            Images, read by the one pixel-scale contract (user guide, "Pixel scale"):
            uint8 / 255, uint16 / 65535, floats in [0, 1]; other dtypes are refused.
            A lazy :class:`~protloc.io.HPAImageSequence` is decoded batch by batch.
        y : array-like of shape (n_samples, n_classes) or (n_samples,)
            0/1 indicator matrix (multi-label) or class labels (multi-class).

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        ValueError
            For images smaller than the receptive field, NaN in images or labels,
            a channel count or class count differing from the fitted one with
            ``warm_start``, or a ``checkpoint`` written by another fit.
        """
        warm = self.warm_start and hasattr(self, "module_")
        # y first: its errors (None, continuous, one class) are cheaper to find than
        # decoding images, and name the actual problem.
        targets, classes, multilabel = self._check_y(y)
        X, positions, names = self._check_X(X, reset=not warm)
        check_consistent_length(np.empty(len(X)), targets)
        if warm:
            self._check_warm_start(classes, multilabel, len(positions))
        else:
            self.classes_ = classes
            self.multilabel_ = multilabel
            self.channels_ = tuple(names)
            self.receptive_field_ = receptive_field(self.depth)
            self._network_config_ = self._network_config(len(positions), len(classes))
            self.loss_curve_ = []
            self.validation_scores_ = []
            self.n_epochs_ = 0

        torch = import_torch()
        rng = check_random_state(self.random_state)
        init_seed, loader_seed, augment_seed = seeds(rng, 3)
        self.device_ = fit_device(self.device)
        device = runtime_device(self)

        use_validation = self.early_stopping or self.threshold == "validation"
        if use_validation:
            train_idx, val_idx = _validation_split(len(X), self.validation_fraction, rng)
        else:
            train_idx, val_idx = np.arange(len(X)), np.arange(0)
        fingerprint = self._fingerprint(X, targets, positions)
        saved = self._load_checkpoint(fingerprint)
        if saved is not None:
            # The interrupted run's split, which random_state=None would not redraw.
            train_idx = saved["train_idx"].numpy()
            val_idx = saved["val_idx"].numpy()
        if self.multilabel_ and self.threshold == "validation":
            _warn_undecidable(
                targets[val_idx],
                0.5,
                where="the validation split",
                fix="Raise validation_fraction, give these classes more samples, or pass "
                "a number as threshold.",
            )
        field = self.receptive_field_
        train_set = ImageDataset(X, positions, self.image_size, field, targets, train_idx)
        val_set = ImageDataset(X, positions, self.image_size, field, indices=val_idx)

        if not warm:
            self.module_ = self._build_module(torch.Generator().manual_seed(init_seed))
        module = self.module_.to(device)
        weight = None
        if self.class_weight == "balanced":
            weight = torch.as_tensor(
                balanced_weights(targets[train_idx], multilabel),
                dtype=torch.float32,
                device=device,
            )
        optimizer = torch.optim.AdamW(
            module.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        amp = autocast_dtype(self.precision, device)
        scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
        # Cosine decay over the planned epochs: large steps early, fine ones late,
        # which makes small networks converge reliably in few epochs.
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        loader_gen = torch.Generator().manual_seed(loader_seed)
        loader = self._loader(train_set, shuffle=True, generator=loader_gen, device=device)
        augment_gen = torch.Generator().manual_seed(augment_seed)
        run = {
            "epoch": 0,
            "stale": 0,
            "thresholds": np.full(
                len(classes), 0.5 if self.threshold == "validation" else float(self.threshold)
            ),
            "best": None,
        }
        split = (train_idx, val_idx)
        if saved is not None:
            self._resume(saved, run, module, optimizer, schedule, loader_gen, augment_gen)

        from tqdm.auto import tqdm

        bar = tqdm(
            total=self.epochs,
            initial=run["epoch"],
            desc=type(self).__name__,
            unit="epoch",
            disable=not self.progress,
        )
        while run["epoch"] < self.epochs:
            if self.early_stopping and run["stale"] >= self.n_iter_no_change:
                break
            mean_loss = self._train_epoch(
                module, loader, optimizer, scaler, amp, device, weight, augment_gen
            )
            schedule.step()
            run["epoch"] += 1
            self.loss_curve_.append(mean_loss)
            self.n_epochs_ += 1
            postfix = {"loss": f"{mean_loss:.4f}"}
            if use_validation:
                score = self._validate(module, val_set, targets[val_idx], device, run)
                postfix["val_f1"] = f"{score:.3f}"
            if self.checkpoint is not None:
                self._save_checkpoint(
                    fingerprint, split, run, module, optimizer, schedule, loader_gen, augment_gen
                )
            bar.set_postfix(postfix)
            bar.update()
        bar.close()

        thresholds = run["thresholds"]
        if use_validation and self.early_stopping:
            score, state, thresholds = run["best"]
            module.load_state_dict(state)
        self.best_validation_score_ = run["best"][0] if run["best"] is not None else None
        self.thresholds_ = np.asarray(thresholds, dtype=float) if self.multilabel_ else None
        module.eval()
        return self

    def _train_epoch(self, module, loader, optimizer, scaler, amp, device, weight, augment_gen):
        """One pass over the training data; returns the mean loss."""
        torch = import_torch()
        module.train()
        total, count = 0.0, 0
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True)
            yb = yb.to(device, non_blocking=True)
            if self.augment:
                xb = augment_batch(xb, augment_gen)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = self._scores(module, xb)
            loss = self._loss(logits.float(), yb, weight)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            total += float(loss.detach()) * len(xb)
            count += len(xb)
        if not np.isfinite(total):
            raise ValueError(
                "Training diverged (the loss is NaN or Inf); lower lr, or use precision='fp32'."
            )
        return total / count

    def _validate(self, module, val_set, y_val, device, run):
        """Validation macro-F1 of this epoch; keeps the best epoch's weights in ``run``."""
        proba = self._proba_from_logits(self._infer(val_set, device, self._scores))
        if self.multilabel_ and self.threshold == "validation":
            run["thresholds"] = _validation_thresholds(y_val, proba)
        score = self._macro_f1(y_val, self._predict_from_proba(proba, run["thresholds"]))
        self.validation_scores_.append(score)
        if run["best"] is None or score > run["best"][0]:
            state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            run["best"], run["stale"] = (score, state, np.array(run["thresholds"])), 0
        else:
            run["stale"] += 1
        return score

    # ------------------------------------------------------------------ checkpoints
    def _fingerprint(self, X, targets, positions):
        """Identifies one fit: parameters that change training, the data's shape, labels."""
        skip = {"checkpoint", "device", "n_jobs", "progress", "warm_start"}
        params = {k: v for k, v in self.get_params().items() if k not in skip}
        return cache_key(
            {
                "estimator": type(self).__name__,
                "params": params,
                "n_samples": len(X),
                "positions": list(positions),
                "targets": hash_array(np.ascontiguousarray(targets)),
                "start_epochs": self.n_epochs_,
            }
        )

    def _save_checkpoint(
        self, fingerprint, split, run, module, optimizer, schedule, loader_gen, aug
    ):
        torch = import_torch()
        best = run["best"]
        payload = {
            "fingerprint": fingerprint,
            "train_idx": torch.as_tensor(split[0]),
            "val_idx": torch.as_tensor(split[1]),
            "epoch": run["epoch"],
            "stale": run["stale"],
            "thresholds": [float(t) for t in run["thresholds"]],
            "best": None if best is None else [float(best[0]), best[1], best[2].tolist()],
            "module": module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "loader_rng": loader_gen.get_state(),
            "augment_rng": aug.get_state(),
            "loss_curve": list(self.loss_curve_),
            "validation_scores": [float(v) for v in self.validation_scores_],
        }
        path = self._checkpoint_file(fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save(payload, partial)
        # Atomic: a crash while writing leaves the previous epoch's checkpoint intact.
        os.replace(partial, path)

    def _checkpoint_file(self, fingerprint):
        """This fit's file in the ``checkpoint`` folder: one file per estimator and fit."""
        folder = cache_folder(self.checkpoint)
        if folder.exists() and not folder.is_dir():
            raise ValueError(
                f"checkpoint={str(self.checkpoint)!r} is a file; checkpoint names a folder "
                "(each estimator writes its own file into it). Pass a folder path."
            )
        return folder / f"{type(self).__name__.lower()}-{fingerprint}.pt"

    def _load_checkpoint(self, fingerprint):
        """The saved state of this same fit, or None when there is none."""
        if self.checkpoint is None:
            return None
        path = self._checkpoint_file(fingerprint)
        if not path.is_file():
            return None
        torch = import_torch()
        try:
            saved = torch.load(str(path), map_location="cpu", weights_only=True)
        except PermissionError:
            raise
        except Exception as exc:  # torch's unpickler raises almost any type for a bad file
            problem = f"torch cannot read it ({type(exc).__name__})"
        else:
            is_ours = isinstance(saved, dict) and "fingerprint" in saved
            problem = None if is_ours else "it holds no protloc training state"
        if problem is not None:
            # torch's own message advises weights_only=False, unsafe on a file of unknown
            # origin; it is not passed on.
            raise ValueError(
                f"Checkpoint {str(path)!r} is not a protloc checkpoint: {problem}. It is "
                "corrupt or truncated, or another program wrote it. Delete it, or pass "
                "another checkpoint folder."
            ) from None
        if saved.get("fingerprint") != fingerprint:
            raise ValueError(
                f"Checkpoint {str(path)!r} was not written by this fit (other parameters, "
                "data or labels); delete it."
            )
        return saved

    def _resume(self, saved, run, module, optimizer, schedule, loader_gen, aug):
        device = next(module.parameters()).device
        module.load_state_dict(saved["module"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        loader_gen.set_state(saved["loader_rng"])
        aug.set_state(saved["augment_rng"])
        run["epoch"], run["stale"] = saved["epoch"], saved["stale"]
        run["thresholds"] = np.asarray(saved["thresholds"])
        if saved["best"] is not None:
            score, state, thresholds = saved["best"]
            state = {k: v.to(device) for k, v in state.items()}
            run["best"] = (score, state, np.asarray(thresholds))
        self.loss_curve_ = list(saved["loss_curve"])
        self.validation_scores_ = list(saved["validation_scores"])
        self.n_epochs_ += run["epoch"]

    def _loss(self, logits, yb, weight):
        if self.multilabel_:
            return multilabel_loss(
                logits, yb, kind=self.loss, gamma=self.focal_gamma, pos_weight=weight
            )
        return multiclass_loss(logits, yb, kind=self.loss, gamma=self.focal_gamma, weight=weight)

    def _check_warm_start(self, classes, multilabel, n_channels):
        name = type(self).__name__
        if (
            multilabel != self.multilabel_
            or len(classes) != len(self.classes_)
            or (not multilabel and not np.array_equal(classes, self.classes_))
        ):
            raise ValueError(
                f"warm_start=True continues the fitted {name}, which has "
                f"{len(self.classes_)} classes {'(multi-label)' if self.multilabel_ else ''}"
                f", but y has {len(classes)}; refit with warm_start=False to train a new "
                "network for these classes."
            )
        config = self._network_config(n_channels, len(classes))
        changed = [k for k in config if config[k] != self._network_config_[k]]
        if changed:
            raise ValueError(
                f"warm_start=True cannot change the network: {', '.join(changed)} differ "
                "from the fitted network; restore them or refit with warm_start=False."
            )

    # ------------------------------------------------------------------ predict
    def _logits(self, X):
        check_is_fitted(self)
        X, positions, _ = self._check_X(X, reset=False)
        dataset = ImageDataset(X, positions, self.image_size, self.receptive_field_)
        return self._infer(dataset, runtime_device(self), self._scores)

    def decision_function(self, X):
        """Image-level logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, rows, cols, channels) or HPAImageSequence

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes)
        """
        return self._logits(X)

    def predict_proba(self, X):
        """Class probabilities: per-class sigmoids (multi-label) or a softmax (multi-class).

        Parameters
        ----------
        X : array-like of shape (n_samples, rows, cols, channels) or HPAImageSequence

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return self._proba_from_logits(self._logits(X))

    def predict(self, X):
        """Predicted labels: thresholded probabilities, or the most probable class.

        Parameters
        ----------
        X : array-like of shape (n_samples, rows, cols, channels) or HPAImageSequence

        Returns
        -------
        y : ndarray of shape (n_samples, n_classes) or (n_samples,)
            A 0/1 indicator matrix (thresholds ``thresholds_``) when fitted on one,
            otherwise labels from ``classes_``.
        """
        pred = self._predict_from_proba(self.predict_proba(X), self.thresholds_)
        return pred if self.multilabel_ else self.classes_[pred]

    # ------------------------------------------------------------------ persistence
    def __getstate__(self):
        # A copy: object.__getstate__ returns the live __dict__ itself.
        state = dict(super().__getstate__())
        module = state.pop("module_", None)
        if module is not None:
            torch = import_torch()
            buffer = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buffer)
            state["_module_state"] = buffer.getvalue()
        return state

    def __setstate__(self, state):
        blob = state.pop("_module_state", None)
        super().__setstate__(state)
        if blob is not None:
            torch = import_torch()
            weights = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            module = self._build_module(torch.Generator().manual_seed(0))
            module.load_state_dict(weights)
            module.eval()
            self.module_ = module

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.allow_nan = False
        return tags


_SHARED_PARAMS = """channels : sequence of str or int, or None, default=("red", "green", "blue", "yellow")
        Channels the network sees, by name or position; None takes every channel.
        Arrays with 4 channels are read as ``DEFAULT_CHANNELS``; an
        :class:`~protloc.io.HPAImageSequence` names its own.
    image_size : int or None, default=256
        Images are resized (bilinear, antialiased) to ``image_size x image_size``;
        None keeps their size (all images must then share one size). Must be at
        least the network's receptive field.
    width : int, default=32
        Channels of the first stage; each later stage doubles them, up to 8x.
    depth : int, default=10
        Number of 3x3 convolutional layers, in stages of two separated by 2x2
        max-pooling.
    epochs : int, default=30
        Maximum number of passes over the training data.
    %(batch_size)s
    lr : float, default=1e-3
        AdamW learning rate.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    loss : {"bce", "focal"}, default="bce"
        Cross-entropy (per-class sigmoid for multi-label ``y``, softmax for 1-d
        ``y``) or its focal form, which down-weights easy examples.
    focal_gamma : float, default=2.0
        Focusing exponent of the focal loss.
    class_weight : {"balanced"} or None, default=None
        "balanced" weighs each class's positives by ``n_negative / n_positive``
        (multi-label) or each class by ``n_samples / (n_classes * count)``.
    threshold : float in (0, 1) or "validation", default=0.5
        Probability threshold of :meth:`predict` for multi-label ``y``;
        "validation" learns one threshold per class maximising F1 on the
        validation fraction.
    augment : bool, default=True
        Random flips, 90-degree rotations and small intensity jitter in training.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training data, stop when its macro-F1
        has not improved for ``n_iter_no_change`` epochs, and keep the best epoch's
        weights.
    validation_fraction : float in (0, 1), default=0.1
        Held-out fraction for early stopping and threshold learning.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    warm_start : bool, default=False
        Continue training the fitted network in the next :meth:`fit` (for
        ``epochs`` more epochs, with a fresh optimizer) instead of starting anew.
    %(device)s
    %(precision)s
    %(n_jobs)s
    %(random_state)s
    %(progress)s
    %(checkpoint)s"""

_SHARED_ATTRIBUTES = """classes_ : ndarray of shape (n_classes,)
        Class labels; ``arange(n_classes)`` for a multi-label indicator ``y``.
    multilabel_ : bool
        Whether ``y`` was a multi-label indicator matrix.
    n_channels_in_ : int
        Number of channels of the images seen in :meth:`fit`.
    channels_ : tuple of str
        The channels the network sees, in order.
    receptive_field_ : int
        Receptive field of the convolutional trunk, in pixels; smaller images are
        refused.
    module_ : torch.nn.Module
        The trained network. Pickling stores its CPU state dict.
    thresholds_ : ndarray of shape (n_classes,) or None
        Per-class thresholds of :meth:`predict` (multi-label only).
    loss_curve_ : list of float
        Mean training loss per epoch.
    validation_scores_ : list of float
        Validation macro-F1 per epoch (empty without a validation fraction).
    best_validation_score_ : float or None
        Best validation macro-F1.
    n_epochs_ : int
        Epochs trained, counting warm starts.
    device_ : str
        Device used by the last fit."""


@fill_shared_docs
class CNNClassifier(_NetClassifier):
    __doc__ = f"""Convolutional network with a dense classifier, trained on the images.

    A trunk of ``depth`` 3x3 convolution + batch-norm + ReLU layers (stages of two
    separated by max-pooling), global average and max pooling side by side, and a
    two-layer dense classifier, after the CNN of Liimatainen et al. (2021). Outputs are sigmoids
    for multi-label ``y`` (an indicator matrix) and a softmax for 1-d ``y``.

    Parameters
    ----------
    {_SHARED_PARAMS}

    Attributes
    ----------
    {_SHARED_ATTRIBUTES}

    See Also
    --------
    FCNClassifier : the fully convolutional variant, with class maps.

    Examples
    --------
    >>> import numpy as np
    >>> from protloc.nets import CNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, size=(8, 16, 16, 4), dtype=np.uint8)
    >>> Y = np.array([[1, 0], [0, 1]] * 4)
    >>> clf = CNNClassifier(image_size=16, width=4, depth=2, epochs=2, batch_size=4,
    ...                     early_stopping=False, progress=False, random_state=0)
    >>> clf.fit(X, Y).predict_proba(X).shape
    (8, 2)
    """

    _kind = "cnn"


@fill_shared_docs
class FCNClassifier(_NetClassifier):
    __doc__ = f"""Fully convolutional network giving one localization map per class.

    The convolutional trunk of :class:`CNNClassifier` ends in a 1x1 convolution
    producing a class map at ``1 / 2**(ceil(depth / 2) - 1)`` of the input size;
    a global pooling of each map gives the image-level score, as in the FCN of
    Liimatainen et al. (2021). :meth:`localization_maps` returns the maps, which
    :func:`protloc.plot.localization_maps` overlays on the image.

    Parameters
    ----------
    {_SHARED_PARAMS}
    pooling : {{"max", "mean", "lse"}}, default="lse"
        Global pooling of the class maps: max, mean, or log-sum-exp, which lies
        between them.
    lse_sharpness : float, default=5.0
        The ``r`` of log-sum-exp pooling, ``log(mean(exp(r * x))) / r``; large
        values approach max pooling.

    Attributes
    ----------
    {_SHARED_ATTRIBUTES}

    See Also
    --------
    CNNClassifier : the same trunk with a dense classifier.

    Examples
    --------
    >>> import numpy as np
    >>> from protloc.nets import FCNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, size=(8, 16, 16, 4), dtype=np.uint8)
    >>> Y = np.array([[1, 0], [0, 1]] * 4)
    >>> clf = FCNClassifier(image_size=16, width=4, depth=3, epochs=2, batch_size=4,
    ...                     early_stopping=False, progress=False, random_state=0)
    >>> clf.fit(X, Y).localization_maps(X).shape
    (8, 2, 8, 8)
    >>> clf.localization_maps(X[:1], upsample=True).shape
    (1, 2, 16, 16)
    """

    _kind = "fcn"

    _parameter_constraints: ClassVar[dict] = {
        **_NetClassifier._parameter_constraints,
        "pooling": [StrOptions({"max", "mean", "lse"})],
        "lse_sharpness": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        channels=DEFAULT_CHANNELS,
        image_size=256,
        width=32,
        depth=10,
        epochs=30,
        batch_size=32,
        lr=1e-3,
        weight_decay=1e-4,
        loss="bce",
        focal_gamma=2.0,
        class_weight=None,
        threshold=0.5,
        augment=True,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=5,
        warm_start=False,
        device="auto",
        precision="auto",
        n_jobs=None,
        random_state=None,
        progress=True,
        checkpoint=None,
        pooling="lse",
        lse_sharpness=5.0,
    ):
        super().__init__(
            channels=channels,
            image_size=image_size,
            width=width,
            depth=depth,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            loss=loss,
            focal_gamma=focal_gamma,
            class_weight=class_weight,
            threshold=threshold,
            augment=augment,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            warm_start=warm_start,
            device=device,
            precision=precision,
            n_jobs=n_jobs,
            random_state=random_state,
            progress=progress,
            checkpoint=checkpoint,
        )
        self.pooling = pooling
        self.lse_sharpness = lse_sharpness

    def _scores(self, module, x):
        config = self._network_config_
        return pool_maps(module(x), config["pooling"], config["lse_sharpness"])

    def localization_maps(self, X, *, upsample=False):
        """Per-class probability maps: the sigmoid of each class's logit map.

        Parameters
        ----------
        X : array-like of shape (n_samples, rows, cols, channels) or HPAImageSequence
        upsample : bool, default=False
            Resize the maps (bilinear) to the images' own ``(rows, cols)``; for an
            :class:`~protloc.io.HPAImageSequence`, to the size of its first sample.

        Returns
        -------
        maps : ndarray of shape (n_samples, n_classes, rows', cols')
            Values in [0, 1]; ``rows'`` is the network input size over
            ``2**k`` (k max-pool layers), or ``rows`` when ``upsample``.
        """
        check_is_fitted(self)
        torch = import_torch()
        X, positions, _ = self._check_X(X, reset=False)
        if upsample:
            size = tuple(X.shape[1:3]) if isinstance(X, np.ndarray) else X[0].shape[:2]
        dataset = ImageDataset(X, positions, self.image_size, self.receptive_field_)

        def maps(module, xb):
            out = module(xb).float()
            if upsample:
                out = torch.nn.functional.interpolate(
                    out, size=size, mode="bilinear", align_corners=False
                )
            # Maps stay in the network's per-class sigmoid scale in both tasks.
            return torch.sigmoid(out)

        return self._infer(dataset, runtime_device(self), maps)
