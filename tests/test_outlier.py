"""DensityOutlierDetector: scikit-learn's outlier-detector contract and real detection."""

import pickle

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KernelDensity
from sklearn.utils import estimator_checks
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmaf import DensityOutlierDetector, MAFDensity
from skmaf.metrics import anomaly_roc_auc_scorer

from ._common import STRICT_XFAIL, TINY

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _detectors():
    """One detector per kind of inner estimator: a flow, a mixture, a kernel estimate."""
    return [
        DensityOutlierDetector(MAFDensity(**TINY)),
        DensityOutlierDetector(GaussianMixture(n_components=2, max_iter=20, random_state=0)),
        DensityOutlierDetector(KernelDensity()),
    ]


def _name(detector):
    return type(detector.estimator).__name__


# Every check is expected to pass: no expected_failed_checks, strict.
@parametrize_with_checks(_detectors(), **STRICT_XFAIL)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("detector", _detectors(), ids=_name)
def test_param_validation(detector):
    estimator_checks.check_param_validation("DensityOutlierDetector", detector)


@pytest.mark.filterwarnings("ignore:X (does not have valid|has) feature names:UserWarning")
def test_dataframe_column_names_consistency():
    pytest.importorskip("pandas")
    estimator_checks.check_dataframe_column_names_consistency(
        "DensityOutlierDetector", _detectors()[0]
    )


@pytest.fixture
def blob_with_outliers():
    """300 rows of a correlated 2-D Gaussian plus 12 scattered rows 7-10 sd away.

    Returns X and y with 1 for an inlier and 0 for a planted outlier.
    """
    rng = np.random.RandomState(0)
    inliers = rng.multivariate_normal([1.0, -2.0], [[1.0, 0.6], [0.6, 1.0]], size=300)
    angle = rng.uniform(0, 2 * np.pi, size=12)
    radius = rng.uniform(7, 10, size=12)
    outliers = [1.0, -2.0] + radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    X = np.vstack([inliers, outliers])
    y = np.r_[np.ones(300, dtype=int), np.zeros(12, dtype=int)]
    return X, y


@pytest.mark.parametrize("contamination", [0.05, 0.1, 0.25, 0.5])
def test_offset_is_the_contamination_quantile(contamination, gaussian_data):
    detector = DensityOutlierDetector(MAFDensity(**TINY), contamination=contamination)
    detector.fit(gaussian_data)
    scores = detector.score_samples(gaussian_data)
    assert detector.offset_ == np.percentile(scores, 100 * contamination)
    fraction = np.mean(detector.predict(gaussian_data) == -1)
    assert abs(fraction - contamination) <= 1 / len(gaussian_data)


@pytest.mark.parametrize("detector", _detectors(), ids=_name)
def test_decision_function_and_predict_follow_score_samples(detector, gaussian_data):
    detector.fit(gaussian_data)
    X = np.vstack([gaussian_data, gaussian_data + 5.0])
    scores = detector.score_samples(X)
    decision = detector.decision_function(X)
    np.testing.assert_array_equal(decision, scores - detector.offset_)
    labels = detector.predict(X)
    assert labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, np.where(decision < 0, -1, 1))
    # Higher log-density means more normal.
    assert np.mean(labels[len(gaussian_data):] == -1) > np.mean(labels[: len(gaussian_data)] == -1)


@pytest.mark.parametrize("detector", _detectors(), ids=_name)
def test_planted_outliers_get_the_lowest_scores(detector, blob_with_outliers):
    X, y = blob_with_outliers
    # Fitted on the contaminated data, as an unsupervised detector would be.
    scores = detector.fit(X).score_samples(X)
    assert set(np.argsort(scores)[:12]) == set(np.flatnonzero(y == 0))
    assert roc_auc_score(y, scores) > 0.95
    assert np.all(detector.predict(X[y == 0]) == -1)


@pytest.mark.parametrize("detector", _detectors()[:2], ids=_name)
def test_scores_stay_finite_and_ordered_far_from_the_data(detector, gaussian_data):
    detector.fit(gaussian_data)
    centre = gaussian_data.mean(axis=0)
    far = centre + np.array([0.0, 10.0, 1e3, 1e6])[:, None] * np.array([1.0, -1.0, 1.0])
    scores = detector.score_samples(far)
    assert np.all(np.isfinite(scores))
    assert np.argmin(scores) == 3
    assert scores[0] == scores.max()
    np.testing.assert_array_equal(detector.predict(far[2:]), [-1, -1])


def test_refits_leave_out_the_lowest_density_rows(blob_with_outliers):
    """Each refit drops the trim fraction of all training rows, those of lowest
    log-density under the model before it, and fits a fresh clone on the rest."""
    X, _ = blob_with_outliers
    inner = GaussianMixture(n_components=1, random_state=0)
    once = DensityOutlierDetector(inner, n_refits=0).fit(X)
    assert once.inlier_mask_.all()
    refitted = DensityOutlierDetector(inner, trim=0.1, n_refits=1).fit(X)
    first_scores = once.score_samples(X)
    dropped = np.argsort(first_scores, kind="stable")[: int(0.1 * len(X))]
    np.testing.assert_array_equal(np.flatnonzero(~refitted.inlier_mask_), np.sort(dropped))
    direct = clone(inner).fit(X[refitted.inlier_mask_])
    np.testing.assert_allclose(refitted.score_samples(X), direct.score_samples(X))
    assert refitted.offset_ == np.percentile(refitted.score_samples(X), 10)
    # The planted outliers are among the dropped rows, and no longer inflate the fit:
    # the refitted covariance is that of the blob.
    assert not refitted.inlier_mask_[-12:].any()
    np.testing.assert_allclose(np.linalg.det(refitted.estimator_.covariances_[0]),
                               np.linalg.det(np.cov(X[:300].T)), rtol=0.5)


def test_no_refit_without_a_trim(gaussian_data):
    detector = DensityOutlierDetector(GaussianMixture(random_state=0), trim=0.0).fit(
        gaussian_data)
    assert detector.inlier_mask_.all()


def test_default_estimator_is_a_maf():
    X = np.random.RandomState(0).normal(size=(30, 2))
    detector = DensityOutlierDetector().fit(X)
    assert type(detector.estimator_) is MAFDensity
    assert detector.estimator is None


def test_the_given_estimator_is_cloned_not_fitted(gaussian_data):
    inner = MAFDensity(**TINY)
    detector = DensityOutlierDetector(inner).fit(gaussian_data)
    assert detector.estimator_ is not inner
    assert not hasattr(inner, "n_features_in_")


def test_inner_parameters_are_still_validated(gaussian_data):
    # fit uses prefer_skip_nested_validation=False, so the inner estimator's own
    # constraints apply when the detector fits it.
    detector = DensityOutlierDetector(MAFDensity(**{**TINY, "n_transforms": 0}))
    with pytest.raises(InvalidParameterError, match="n_transforms"):
        detector.fit(gaussian_data)


def _outputs(detector, X):
    return (detector.score_samples(X), detector.decision_function(X), detector.predict(X))


@pytest.mark.parametrize("detector", _detectors(), ids=_name)
def test_clone_pickle_and_joblib_round_trips_give_identical_scores(
    detector, gaussian_data, tmp_path
):
    detector.fit(gaussian_data)
    expected = _outputs(detector, gaussian_data)
    refitted = clone(detector).fit(gaussian_data)
    pickled = pickle.loads(pickle.dumps(detector))
    path = tmp_path / "detector.joblib"
    joblib.dump(detector, path)
    loaded = joblib.load(path, mmap_mode="r")
    for copy in (refitted, pickled, loaded):
        assert copy.offset_ == detector.offset_
        for got, want in zip(_outputs(copy, gaussian_data), expected):
            np.testing.assert_array_equal(got, want)


def test_grid_search_by_roc_auc(blob_with_outliers):
    X, y = blob_with_outliers
    y = np.where(y == 1, 1, -1)  # predict's labels: roc_auc's positive class 1 is "inlier",
    # which is the class that decision_function ranks high, so the AUC reads as usual.
    search = GridSearchCV(
        DensityOutlierDetector(MAFDensity(**TINY)),
        {"estimator__n_hidden_units": [4, 8], "contamination": [0.05, 0.2]},
        scoring="roc_auc",
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    # The grid's keys in sorted order: a row per contamination, a column per width.
    scores = search.cv_results_["mean_test_score"].reshape(2, 2)
    assert np.all(scores > 0.9)
    # contamination only moves the threshold, never the ranking.
    np.testing.assert_array_equal(scores[0], scores[1])
    assert search.best_estimator_.estimator_.n_hidden_units in (4, 8)


# ------------------------------------------------------------------- bad input
@pytest.fixture
def fitted(gaussian_data):
    return DensityOutlierDetector(MAFDensity(**TINY)).fit(gaussian_data)


def _with(X, row, column, value):
    X = X.copy()
    X[row, column] = value
    return X


@pytest.mark.parametrize("method", ["score_samples", "decision_function", "predict"])
def test_bad_scoring_data_is_rejected(method, fitted, gaussian_data):
    call = getattr(fitted, method)
    with pytest.raises(ValueError, match="X has 2 features, but DensityOutlierDetector is "
                                         "expecting 3 features"):
        call(gaussian_data[:, :2])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        call(_with(gaussian_data, 3, 1, np.nan))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        call(_with(gaussian_data, 0, 0, np.inf))
    with pytest.raises(TypeError, match="[Ss]parse"):
        call(sp.csr_matrix(gaussian_data))


BAD_REFITS = {
    # Rejected by the detector's own validation.
    "nan": (lambda X: _with(X, 3, 1, np.nan), "Input X contains NaN"),
    "no rows": (lambda X: X[:0], "0 sample"),
    # Valid for the detector, which resets n_features_in_ to 2; then the inner fit fails.
    "inner fit fails": (lambda X: X[:1, :2], "1 sample"),
}


@pytest.mark.parametrize("case", BAD_REFITS)
def test_failed_refit_leaves_the_fitted_detector_unchanged(case, fitted, gaussian_data):
    make_bad, message = BAD_REFITS[case]
    before = pickle.dumps(fitted)
    scores = fitted.score_samples(gaussian_data)
    with pytest.raises(ValueError, match=message):
        fitted.fit(make_bad(gaussian_data))
    assert pickle.dumps(fitted) == before
    np.testing.assert_array_equal(fitted.score_samples(gaussian_data), scores)


@pytest.mark.parametrize("method", ["score_samples", "decision_function", "predict"])
def test_unfitted_detector_raises_not_fitted(method, gaussian_data):
    with pytest.raises(NotFittedError):
        getattr(DensityOutlierDetector(MAFDensity(**TINY)), method)(gaussian_data)


@pytest.mark.parametrize("anomaly_label, normal_label", [(1, 0), (-1, 1)])
def test_the_anomaly_scorer_picks_the_better_detector_in_either_label_convention(
        anomaly_label, normal_label):
    """Model selection by ROC-AUC: the detector that separates anomalies (a mixture
    with enough components) must win whichever value marks an anomaly."""
    rng = np.random.RandomState(0)
    normal = np.vstack([rng.normal(-4, 0.5, size=(150, 2)), rng.normal(4, 0.5, size=(150, 2))])
    anomalies = rng.uniform(-1.5, 1.5, size=(30, 2))  # between the two modes
    X = np.vstack([normal, anomalies])
    y = np.r_[np.full(300, normal_label), np.full(30, anomaly_label)]
    search = GridSearchCV(
        DensityOutlierDetector(GaussianMixture(random_state=0)),
        {"estimator__n_components": [1, 2]},
        scoring=anomaly_roc_auc_scorer(anomaly_label=anomaly_label),
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    assert search.best_params_ == {"estimator__n_components": 2}
    assert search.best_score_ > 0.9
    with pytest.raises(ValueError, match="needs both anomalies"):
        anomaly_roc_auc_scorer(anomaly_label)(search.best_estimator_, X[:300], y[:300])
