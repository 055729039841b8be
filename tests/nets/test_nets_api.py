"""CNNClassifier / FCNClassifier behaviour on tiny images: API, persistence, bad input."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline

from protloc.io import HPAImageSequence, load_hpa
from protloc.nets import CNNClassifier, FCNClassifier
from protloc.nets._estimators import _validation_thresholds
from protloc.nets._losses import balanced_weights, multiclass_loss, multilabel_loss
from protloc.nets._models import augment_batch, build_network, receptive_field

ESTIMATORS = [CNNClassifier, FCNClassifier]
TINY = dict(
    image_size=16,
    width=4,
    depth=2,
    epochs=2,
    batch_size=8,
    early_stopping=False,
    progress=False,
    device="cpu",
)


def tiny_data(n=24, size=16, seed=0):
    """Random uint8 images whose labels depend on green and blue brightness."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 60, size=(n, size, size, 4), dtype=np.uint8)
    Y = np.zeros((n, 2), dtype=np.uint8)
    Y[: n // 2, 0] = 1
    Y[n // 3 :, 1] = 1
    X[Y[:, 0] == 1, :, :, 1] += 150
    X[Y[:, 1] == 1, :, :, 2] += 150
    return X, Y


def state_of(clf):
    return {k: v.detach().cpu().clone() for k, v in clf.module_.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- seeding
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_same_seed_gives_same_weights_on_cpu(Estimator):
    X, Y = tiny_data()
    params = dict(TINY, early_stopping=True, validation_fraction=0.25, augment=True)
    a = Estimator(**params, random_state=3).fit(X, Y)
    b = Estimator(**params, random_state=3).fit(X, Y)
    c = Estimator(**params, random_state=4).fit(X, Y)
    assert same_state(state_of(a), state_of(b))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.loss_curve_ == b.loss_curve_
    assert not same_state(state_of(a), state_of(c))


def test_fit_leaves_global_random_state_alone():
    X, Y = tiny_data()
    torch_before = torch.get_rng_state()
    numpy_before = np.random.get_state()[1].copy()  # noqa: NPY002 - checks global state
    CNNClassifier(**TINY, random_state=0).fit(X, Y)
    assert torch.equal(torch.get_rng_state(), torch_before)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_before)  # noqa: NPY002


def test_build_network_is_seeded_by_its_generator():
    kwargs = dict(n_channels=4, n_outputs=3, width=4, depth=3)
    a = build_network("fcn", **kwargs, generator=torch.Generator().manual_seed(1))
    b = build_network("fcn", **kwargs, generator=torch.Generator().manual_seed(1))
    c = build_network("fcn", **kwargs, generator=torch.Generator().manual_seed(2))
    assert same_state(a.state_dict(), b.state_dict())
    assert not same_state(a.state_dict(), c.state_dict())


# --------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_multilabel_outputs(Estimator):
    X, Y = tiny_data()
    clf = Estimator(**TINY, random_state=0).fit(X, Y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert ((proba > 0) & (proba < 1)).all()
    np.testing.assert_array_equal(clf.predict(X), (proba >= 0.5).astype(int))
    np.testing.assert_allclose(proba, 1 / (1 + np.exp(-clf.decision_function(X))), rtol=1e-5)
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    assert clf.multilabel_ and clf.n_channels_in_ == 4 and clf.n_epochs_ == 2
    assert clf.channels_ == ("red", "green", "blue", "yellow")


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_one_dimensional_multiclass_y(Estimator):
    X, Y = tiny_data()
    y = np.array(["unused", "cytosol", "membrane", "nucleus"])[2 * Y[:, 0] + Y[:, 1]]
    clf = Estimator(**TINY, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["cytosol", "membrane", "nucleus"])
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    pred = clf.predict(X)
    assert pred.shape == (len(X),)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert clf.thresholds_ is None


def test_intensities_are_scaled_by_dtype():
    X, Y = tiny_data()
    clf = CNNClassifier(**TINY, random_state=0).fit(X, Y)
    expected = clf.predict_proba(X)
    as_uint16 = X.astype(np.uint16) * 257  # x / 255 == (257 x) / 65535
    np.testing.assert_allclose(clf.predict_proba(as_uint16), expected, rtol=1e-5, atol=1e-6)
    as_float = X.astype(np.float32) / 255
    np.testing.assert_allclose(clf.predict_proba(as_float), expected, rtol=1e-5, atol=1e-6)


def test_images_are_resized_to_image_size():
    X, Y = tiny_data(size=32)
    clf = FCNClassifier(**dict(TINY, depth=3), random_state=0).fit(X, Y)
    maps = clf.localization_maps(X[:2])
    assert maps.shape == (2, 2, 8, 8)  # 16 px input, one max-pool
    up = clf.localization_maps(X[:2], upsample=True)
    assert up.shape == (2, 2, 32, 32)
    assert ((up >= 0) & (up <= 1)).all()
    # Bilinear upsampling keeps the range of each map.
    assert up.max() <= maps.max() + 1e-6 and up.min() >= maps.min() - 1e-6


def test_channels_select_and_reorder():
    X, Y = tiny_data()
    clf = CNNClassifier(**TINY, channels=["blue", "green"], random_state=0).fit(X, Y)
    assert clf.channels_ == ("blue", "green")
    # The network sees only blue and green: changing red and yellow does nothing.
    X2 = X.copy()
    X2[..., [0, 3]] = 255 - X2[..., [0, 3]]
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X2))


@pytest.mark.parametrize("pooling", ["max", "mean", "lse"])
def test_fcn_pooling_of_maps(pooling):
    X, Y = tiny_data()
    clf = FCNClassifier(**TINY, pooling=pooling, random_state=0).fit(X, Y)
    logits = clf.decision_function(X[:4])
    maps = clf.localization_maps(X[:4])
    logit_maps = np.log(maps / (1 - maps)).reshape(4, 2, -1)
    expected = {
        "max": logit_maps.max(axis=2),
        "mean": logit_maps.mean(axis=2),
        "lse": np.log(np.exp(5 * logit_maps).mean(axis=2)) / 5,
    }[pooling]
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------- training
def test_focal_and_balanced_losses():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0], [-3.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    bce = multilabel_loss(logits, targets, kind="bce")
    assert torch.isclose(multilabel_loss(logits, targets, kind="focal", gamma=0.0), bce)
    assert multilabel_loss(logits, targets, kind="focal", gamma=2.0) < bce
    pos_weight = torch.tensor([2.0, 1.0])
    assert multilabel_loss(logits, targets, pos_weight=pos_weight) > bce
    labels = torch.tensor([0, 1, 1])
    ce = multiclass_loss(logits, labels)
    assert torch.isclose(ce, torch.nn.functional.cross_entropy(logits, labels))
    assert torch.isclose(multiclass_loss(logits, labels, kind="focal", gamma=0.0), ce)
    assert multiclass_loss(logits, labels, kind="focal") < ce
    np.testing.assert_allclose(balanced_weights(np.array([[1, 0], [0, 0], [0, 1]]), True), [2, 2])


@pytest.mark.parametrize("loss", ["bce", "focal"])
def test_loss_options_train(loss):
    X, Y = tiny_data()
    plain = CNNClassifier(**TINY, random_state=0).fit(X, Y)
    other = CNNClassifier(**TINY, loss=loss, class_weight="balanced", random_state=0).fit(X, Y)
    assert np.isfinite(other.loss_curve_).all()
    assert other.loss_curve_ != plain.loss_curve_


def test_threshold_learned_on_validation_fraction():
    X, Y = tiny_data(n=40)
    clf = FCNClassifier(
        **dict(TINY, early_stopping=False),
        threshold="validation",
        validation_fraction=0.25,
        random_state=0,
    ).fit(X, Y)
    assert clf.thresholds_.shape == (2,)
    assert ((clf.thresholds_ > 0) & (clf.thresholds_ < 1)).all()
    assert len(clf.validation_scores_) == clf.n_epochs_ == 2
    np.testing.assert_array_equal(
        clf.predict(X), (clf.predict_proba(X) >= clf.thresholds_).astype(int)
    )


def test_validation_thresholds_maximise_f1_and_keep_undecidable_classes_at_half():
    Y = np.array([[1, 0, 1], [1, 0, 1], [0, 0, 1], [0, 0, 1]])
    P = np.array([[0.9, 0.1, 0.2], [0.8, 0.2, 0.3], [0.7, 0.3, 0.1], [0.1, 0.4, 0.3]])
    thresholds = _validation_thresholds(Y, P)
    # Thresholds in (0.7, 0.8] separate class 0; halfway is 0.75.
    assert thresholds[0] == pytest.approx(0.75)
    # No positive (class 1) or no negative (class 2): F1 cannot place a threshold.
    assert thresholds[1] == 0.5
    assert thresholds[2] == 0.5


def test_early_stopping_stops_and_keeps_best_epoch():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, size=(40, 16, 16, 4), dtype=np.uint8)
    Y = rng.integers(0, 2, size=(40, 3))  # noise: validation F1 cannot keep improving
    params = dict(TINY, epochs=30, early_stopping=True, n_iter_no_change=2, lr=1e-2)
    clf = CNNClassifier(**params, validation_fraction=0.3, random_state=0).fit(X, Y)
    assert clf.n_epochs_ < 30
    assert len(clf.validation_scores_) == clf.n_epochs_
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_warm_start_continues_training():
    X, Y = tiny_data()
    clf = CNNClassifier(**TINY, warm_start=True, random_state=0).fit(X, Y)
    before = state_of(clf)
    clf.fit(X, Y)
    assert clf.n_epochs_ == 4 and len(clf.loss_curve_) == 4
    assert not same_state(before, state_of(clf))
    cold = CNNClassifier(**TINY, random_state=0).fit(X, Y)
    cold.fit(X, Y)
    assert cold.n_epochs_ == 2


def test_progress_bar_reports_loss_and_validation_f1(capsys):
    X, Y = tiny_data()
    params = dict(TINY, progress=True, early_stopping=True, validation_fraction=0.25)
    CNNClassifier(**params, random_state=0).fit(X, Y)
    err = capsys.readouterr().err
    assert "CNNClassifier" in err and "loss=" in err and "val_f1=" in err


def test_augment_batch_flips_rotates_and_jitters():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4) + 1
    g = torch.Generator().manual_seed(0)
    outs = [augment_batch(x, g) for _ in range(8)]
    for out in outs:
        # Each channel keeps its pixel values up to one gain factor in [0.9, 1.1].
        ratio = out.flatten(2).sort(dim=2).values / x.flatten(2).sort(dim=2).values
        assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-5)
        assert ((ratio > 0.9) & (ratio < 1.1)).all()
    assert any(
        not torch.allclose(
            out / out.flatten(2).max(2).values[..., None, None],
            x / x.flatten(2).max(2).values[..., None, None],
        )
        for out in outs
    )


# --------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_pickle_round_trip_stores_state_dict(Estimator):
    X, Y = tiny_data()
    clf = Estimator(**TINY, random_state=0).fit(X, Y)
    state = clf.__getstate__()
    assert "module_" not in state and isinstance(state["_module_state"], bytes)
    assert hasattr(clf, "module_")  # getstate must not strip the live estimator
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert same_state(state_of(restored), state_of(clf))
    assert all(v.device.type == "cpu" for v in restored.module_.state_dict().values())
    unfitted = clone(clf)
    assert not hasattr(unfitted, "module_")


def test_pickled_state_loads_with_weights_only():
    X, Y = tiny_data()
    clf = CNNClassifier(**TINY, random_state=0).fit(X, Y)
    import io

    weights = torch.load(io.BytesIO(clf.__getstate__()["_module_state"]), weights_only=True)
    assert set(weights) == set(clf.module_.state_dict())


@pytest.mark.gpu
def test_gpu_trained_model_predicts_on_cpu(tmp_path):
    X, Y = tiny_data()
    clf = FCNClassifier(**dict(TINY, device="cuda"), random_state=0).fit(X, Y)
    expected = clf.predict_proba(X)
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(clf))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, numpy as np; "
        f"clf = pickle.loads(open({str(path)!r}, 'rb').read()); clf.set_params(device='auto'); "
        f"print(np.abs(clf.predict_proba(np.load({str(tmp_path / 'X.npy')!r}))).sum())"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(np.abs(expected).sum(), rel=2e-2)


def write_pngs(folder, X):
    from PIL import Image

    ids = [f"s{i:02d}" for i in range(len(X))]
    for sample_id, image in zip(ids, X):
        for c, name in enumerate(("red", "green", "blue", "yellow")):
            Image.fromarray(image[..., c]).save(folder / f"{sample_id}_{name}.png")
    return load_hpa(folder, ids=ids, lazy=True).images


class FailingSequence(HPAImageSequence):
    """Image files that become unreadable after ``fail_after`` reads, mid-training."""

    def __init__(self, base, fail_after):
        super().__init__(base.paths, base.ids, base.channels, n_jobs=1)
        self.fail_after = fail_after
        self.reads = 0

    def load(self, indices=None):
        self.reads += 1
        if self.reads > self.fail_after:
            raise OSError("the disk went away")
        return super().load(indices)


def test_checkpoint_resumes_a_crashed_fit_exactly(tmp_path):
    X, Y = tiny_data(n=12)
    lazy = write_pngs(tmp_path, X)
    params = dict(TINY, epochs=4, early_stopping=True, validation_fraction=0.25, random_state=0)
    reference = CNNClassifier(**params).fit(lazy, Y)
    path = tmp_path / "ckpt"
    # 12 reads per epoch (9 training + 3 validation images): fail inside epoch 3.
    with pytest.raises(OSError, match="the disk went away"):
        CNNClassifier(**params, checkpoint=path).fit(FailingSequence(lazy, 12 * 2 + 5), Y)
    (saved,) = path.glob("cnnclassifier-*.pt")
    assert torch.load(saved, weights_only=True)["epoch"] == 2
    resumed = CNNClassifier(**params, checkpoint=path).fit(lazy, Y)
    assert same_state(state_of(resumed), state_of(reference))
    assert resumed.loss_curve_ == reference.loss_curve_
    assert resumed.validation_scores_ == reference.validation_scores_
    assert resumed.n_epochs_ == 4
    # A finished checkpoint is loaded, not retrained.
    again = CNNClassifier(**params, checkpoint=path).fit(FailingSequence(lazy, 0), Y)
    assert same_state(state_of(again), state_of(reference))


def test_checkpoint_keeps_the_split_of_an_unseeded_fit(tmp_path):
    X, Y = tiny_data(n=12)
    lazy = write_pngs(tmp_path, X)
    params = dict(TINY, epochs=3, early_stopping=True, validation_fraction=0.25)
    path = tmp_path / "ckpt"
    with pytest.raises(OSError, match="the disk went away"):
        CNNClassifier(**params, checkpoint=path).fit(FailingSequence(lazy, 12 + 5), Y)
    (file,) = path.glob("*.pt")
    saved = torch.load(file, weights_only=True)
    resumed = CNNClassifier(**params, checkpoint=path).fit(lazy, Y)
    assert resumed.n_epochs_ == 3
    assert resumed.validation_scores_[:1] == saved["validation_scores"]
    assert torch.equal(torch.load(file, weights_only=True)["val_idx"], saved["val_idx"])


def test_checkpoint_folder_holds_one_file_per_fit(tmp_path):
    X, Y = tiny_data()
    folder = tmp_path / "ckpt"
    FCNClassifier(**TINY, random_state=0, checkpoint=folder).fit(X, Y)
    # Another fit (other parameters, other labels) writes its own file beside it.
    FCNClassifier(**dict(TINY, lr=0.5), random_state=0, checkpoint=folder).fit(X, Y)
    FCNClassifier(**TINY, random_state=0, checkpoint=folder).fit(X, 1 - Y)
    assert len(list(folder.glob("fcnclassifier-*.pt"))) == 3
    afile = tmp_path / "fcn.pt"
    afile.write_bytes(b"")
    with pytest.raises(ValueError, match="checkpoint names a folder"):
        FCNClassifier(**TINY, random_state=0, checkpoint=afile).fit(X, Y)


# --------------------------------------------------------------------------- sklearn
def test_pipeline_and_grid_search_over_lr():
    X, Y = tiny_data(n=32)
    pipe = make_pipeline(FCNClassifier(**TINY, random_state=0))
    search = GridSearchCV(
        pipe, {"fcnclassifier__lr": [1e-3, 1e-2]}, cv=KFold(2), scoring="f1_macro"
    )
    search.fit(X, Y)
    assert search.best_params_["fcnclassifier__lr"] in (1e-3, 1e-2)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.predict(X).shape == Y.shape


def test_lazy_sequence_trains_like_the_array(tmp_path):
    X, Y = tiny_data(n=12)
    lazy = write_pngs(tmp_path, X)
    from_array = CNNClassifier(**TINY, random_state=0).fit(X, Y)
    from_files = CNNClassifier(**TINY, random_state=0).fit(lazy, Y)
    assert same_state(state_of(from_array), state_of(from_files))
    np.testing.assert_array_equal(from_files.predict_proba(lazy), from_array.predict_proba(X))
    # A lazy sequence slices like an array, which is how CV splits it.
    assert from_files.predict(lazy[[0, 3]]).shape == (2, 2)


def test_import_does_not_load_torch():
    code = "import sys, protloc.nets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- bad input
def test_channel_count_differing_from_fit_raises():
    X, Y = tiny_data()
    clf = CNNClassifier(**TINY, channels=None, random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match="X has 3 channels, but CNNClassifier was fitted"):
        clf.predict(X[..., :3])


def test_missing_named_channel_raises():
    X, Y = tiny_data()
    with pytest.raises(ValueError, match="Channel 'red' is not present; the data has channels"):
        CNNClassifier(**TINY).fit(X[..., :3], Y)


def test_images_smaller_than_receptive_field_raise():
    X, Y = tiny_data(size=16)
    assert receptive_field(4) == 14
    with pytest.raises(ValueError, match="smaller than the network's receptive field of 14x14"):
        FCNClassifier(**dict(TINY, depth=4, image_size=32)).fit(X[:, :10, :10], Y)
    with pytest.raises(ValueError, match="image_size=8 is smaller than the receptive field"):
        FCNClassifier(**dict(TINY, depth=4, image_size=8)).fit(X, Y)
    clf = FCNClassifier(**dict(TINY, depth=4), random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match="receptive field"):
        clf.predict(X[:, :12, :12])


def test_nan_in_images_raises():
    X, Y = tiny_data()
    X = X.astype(np.float32)
    X[3, 2, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CNNClassifier(**TINY).fit(X, Y)


def test_nan_in_lazy_images_raises(tmp_path):
    import tifffile

    X, Y = tiny_data(n=8)
    X = X.astype(np.float32) / 255
    X[5, 0, 0, 2] = np.nan
    for i, image in enumerate(X):
        for c, name in enumerate(("red", "green", "blue", "yellow")):
            tifffile.imwrite(tmp_path / f"s{i}_{name}.tif", image[..., c])
    lazy = load_hpa(tmp_path, ids=[f"s{i}" for i in range(8)], lazy=True).images
    with pytest.raises(ValueError, match="sample 's5' contains NaN"):
        CNNClassifier(**TINY).fit(lazy, Y)


def test_warm_start_with_different_classes_raises():
    X, Y = tiny_data()
    clf = CNNClassifier(**TINY, warm_start=True, random_state=0).fit(X, Y)
    Y3 = np.column_stack([Y, 1 - Y[:, 0]])
    with pytest.raises(ValueError, match=r"has 2 classes.*but y has 3"):
        clf.fit(X, Y3)
    clf.set_params(width=8)
    with pytest.raises(ValueError, match="cannot change the network: width"):
        clf.fit(X, Y)


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (None, "requires y to be passed"),
        (np.linspace(0, 1, 24), "Unknown label type"),
        (np.zeros(24), "only one class"),
        (np.full(24, np.nan), "y contains NaN"),
    ],
)
def test_bad_y_raises(y, match):
    X, _ = tiny_data()
    with pytest.raises(ValueError, match=match):
        CNNClassifier(**TINY).fit(X, y)


def test_too_few_samples_for_validation_raises():
    X, Y = tiny_data(n=2)
    with pytest.raises(ValueError, match=r"validation_fraction=0\.1 of 2 samples"):
        CNNClassifier(**dict(TINY, early_stopping=True)).fit(X, Y)


def test_unfitted_predict_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FCNClassifier().localization_maps(np.zeros((1, 16, 16, 4), np.uint8))
