"""scikit-learn's estimator checks over every public protloc estimator.

Each estimator family lists its instances and its expected failures, each with the
reason, in ``tests/<family>/estimator_checks.py`` as ``ESTIMATOR_CHECKS``; this file
gathers them so that one command checks them all.
"""

import importlib.util
from pathlib import Path

from sklearn.utils.estimator_checks import parametrize_with_checks

HERE = Path(__file__).parent


def _load_registry():
    entries = []
    for path in sorted(HERE.glob("*/estimator_checks.py")):
        spec = importlib.util.spec_from_file_location(f"_checks_{path.parent.name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        entries.extend(module.ESTIMATOR_CHECKS)
    return entries


_REGISTRY = _load_registry()
_EXPECTED = {id(estimator): expected for estimator, expected in _REGISTRY}


def _expected_failed_checks(estimator):
    return _EXPECTED.get(id(estimator), {})


@parametrize_with_checks(
    [estimator for estimator, _ in _REGISTRY],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_every_public_estimator_is_checked():
    from sklearn.base import BaseEstimator

    import protloc

    public = {
        name
        for name in protloc.__all__
        if isinstance(getattr(protloc, name), type)
        and issubclass(getattr(protloc, name), BaseEstimator)
    }
    checked = {type(estimator).__name__ for estimator, _ in _REGISTRY}
    assert public <= checked, f"estimators without sklearn checks: {sorted(public - checked)}"
