"""The shared parameters mean one thing in every estimator (protloc._params).

Each image estimator takes some of ``device``, ``precision``, ``batch_size``,
``progress``, ``cache``, ``random_state``, ``n_jobs`` and ``checkpoint``; here every
one of them is checked to be constrained, documented and resolved the same way.
"""

import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError, make_constraint

from protloc import (
    CellposeSegmenter,
    CNNClassifier,
    CNNFeatureExtractor,
    FCNClassifier,
    GeneticBlockSelector,
    make_t25_pipeline,
)
from protloc._params import SHARED_CONSTRAINTS, SHARED_DOCS

ESTIMATORS = [
    CellposeSegmenter,
    CNNFeatureExtractor,
    GeneticBlockSelector,
    CNNClassifier,
    FCNClassifier,
]
DOCUMENTED = [*ESTIMATORS, make_t25_pipeline]

BAD_VALUES = {
    "device": 3,
    "precision": "fp8",
    "batch_size": 0,
    "shard_size": 0,
    "progress": "yes",
    "cache": 3,
    "random_state": "seed",
    "n_jobs": "4",
    "checkpoint": 3,
}

TINY_NET = dict(image_size=16, width=4, depth=2, epochs=1, batch_size=8, progress=False)


def _shared(obj):
    signature = inspect.signature(obj.__init__ if isinstance(obj, type) else obj)
    return [name for name in signature.parameters if name in SHARED_CONSTRAINTS]


def _cases(objects):
    return [
        pytest.param(obj, name, id=f"{obj.__name__}-{name}")
        for obj in objects
        for name in _shared(obj)
    ]


def test_every_estimator_takes_shared_parameters():
    for obj in DOCUMENTED:
        assert _shared(obj), obj


@pytest.mark.parametrize("estimator, name", _cases(ESTIMATORS))
def test_shared_constraints_are_the_shared_ones(estimator, name):
    mine = [str(make_constraint(c)) for c in estimator._parameter_constraints[name]]
    assert mine == [str(make_constraint(c)) for c in SHARED_CONSTRAINTS[name]]


@pytest.mark.parametrize("estimator, name", _cases(ESTIMATORS))
def test_bad_shared_values_are_refused_the_same_way(estimator, name):
    est = estimator().set_params(**{name: BAD_VALUES[name]})
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of {estimator.__name__}"):
        est._validate_params()


@pytest.mark.parametrize("obj, name", _cases(DOCUMENTED))
def test_shared_docs_are_identical(obj, name):
    lines = [line.strip() for line in inspect.cleandoc(obj.__doc__).splitlines()]
    heads = [i for i, line in enumerate(lines) if line.startswith(f"{name} : ")]
    assert len(heads) == 1, f"{obj.__name__} documents {name} {len(heads)} times"
    text = [line.strip() for line in SHARED_DOCS[name].splitlines()]
    start = heads[0] + 1
    assert lines[start : start + len(text)] == text
    default = inspect.signature(obj.__init__ if isinstance(obj, type) else obj).parameters[name]
    assert f"default={default.default!r}".replace("'", '"') in lines[heads[0]]


# --------------------------------------------------------------------------- device_
def _fitted_on_cpu(estimator):
    X = np.random.default_rng(0).integers(0, 200, (8, 32, 32, 4), dtype=np.uint8)
    if estimator is CellposeSegmenter:
        return CellposeSegmenter(device="cpu", progress=False).fit(X)
    if estimator is CNNFeatureExtractor:
        ext = CNNFeatureExtractor(
            "resnet10t", weights=None, image_size=32, device="cpu", progress=False
        )
        return ext.fit(X[:2])
    Y = np.tile([[1, 0], [0, 1]], (4, 1))
    return estimator(**TINY_NET, early_stopping=False, device="cpu").fit(X[..., :16, :16, :], Y)


@pytest.mark.parametrize(
    "estimator", [e for e in ESTIMATORS if "device" in _shared(e)], ids=lambda e: e.__name__
)
def test_fitted_device_is_one_string(estimator):
    est = _fitted_on_cpu(estimator)
    assert type(est.device_) is str
    assert est.device_ == "cpu"


# --------------------------------------------------------------------------- ~ folders
@pytest.fixture
def home(tmp_path, monkeypatch):
    """$HOME in a temporary folder, and a working directory apart from it."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return home


def _no_literal_tilde():
    return not any(p.name == "~" for p in Path.cwd().rglob("*"))


def test_tilde_cache_lands_in_home_segmenter(home):
    X = np.zeros((2, 32, 32, 4), np.uint8)
    with pytest.warns(UserWarning, match="no nucleus"):
        CellposeSegmenter(cache="~/c", progress=False).fit_transform(X)
    assert list((home / "c" / "segmentation").rglob("*.npz"))
    assert _no_literal_tilde()


def test_tilde_cache_lands_in_home_extractor(home):
    X = np.random.default_rng(0).integers(0, 200, (2, 32, 32, 4), dtype=np.uint8)
    CNNFeatureExtractor(
        "resnet10t", weights=None, image_size=32, cache="~/c", device="cpu", progress=False
    ).fit_transform(X)
    assert list((home / "c" / "cnn-features").rglob("*.npz"))
    assert _no_literal_tilde()


def test_tilde_checkpoint_lands_in_home_nets(home):
    X = np.random.default_rng(0).integers(0, 200, (8, 16, 16, 4), dtype=np.uint8)
    Y = np.tile([[1, 0], [0, 1]], (4, 1))
    CNNClassifier(**TINY_NET, early_stopping=False, checkpoint="~/ck").fit(X, Y)
    assert list((home / "ck").glob("cnnclassifier-*.pt"))
    assert _no_literal_tilde()


def test_tilde_checkpoint_lands_in_home_selector(home):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    X = rng.normal(size=(20, 4)) + y[:, None]
    GeneticBlockSelector(
        blocks=2, cv=2, population_size=2, generations=1, elitism=0, checkpoint="~/ga",
        progress=False,
    ).fit(X, y)  # fmt: skip
    assert list((home / "ga" / "genetic").rglob("*.npz"))
    assert _no_literal_tilde()


def test_tilde_cache_of_the_factory_lands_in_home_for_both_levels(home):
    # Flat nucleus channels: no Cellpose model is needed, the masks are empty.
    X = np.zeros((2, 32, 32, 4), np.uint8)
    X[..., 1] = np.random.default_rng(0).integers(0, 200, (2, 32, 32))
    pipe = make_t25_pipeline(
        backbones="resnet10t",
        weights=None,
        image_size=32,
        crop_size=16,
        level="both",
        selector=False,
        cache="~/x",
        device="cpu",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no nucleus, no cell
        pipe.named_steps["features"].fit_transform(X)
    assert list((home / "x" / "segmentation").rglob("*.npz"))
    assert list((home / "x" / "cnn-features").rglob("*.npz"))
    assert _no_literal_tilde()


# --------------------------------------------------------------------------- factory
@pytest.mark.parametrize(
    "kwargs, step, param, expected",
    [
        ({"backbones": "resnet18"}, "features__image", "backbones", "resnet18"),
        ({"channels": "green"}, "features__image", "channels", "green"),
        ({"regions": "cell"}, "features__cell__regioncropper", "regions", "cell"),
        ({"cell_pooling": "max"}, "features__cell__cnnfeatureextractor", "cell_pooling", "max"),
    ],
)
def test_factory_passes_strings_through(kwargs, step, param, expected):
    pipe = make_t25_pipeline(**kwargs)
    assert pipe.get_params()[f"{step}__{param}"] == expected


@pytest.mark.parametrize(
    "preset, classifier_key",
    [
        ("default", "thresholdtuner__estimator__estimator__random_state"),
        ("paper", "labelpowersetsvm__random_state"),
    ],
)
def test_factory_passes_random_state_to_every_random_step(preset, classifier_key):
    pipe = make_t25_pipeline(preset=preset, random_state=7)
    seeded = {k: v for k, v in pipe.get_params().items() if k.endswith("random_state")}
    assert classifier_key in seeded
    assert "geneticblockselector__random_state" in seeded
    assert "features__image__random_state" in seeded
    assert set(seeded.values()) == {7}
