"""skmaf inside scikit-learn's machinery: Pipeline, GridSearchCV, clone, DataFrames."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmaf import MAFDensity
from skmaf.metrics import log_likelihood_scorer

from ._common import paper_example

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_pipeline_fits_and_scores(tiny_params):
    X, _ = paper_example(200, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("maf", MAFDensity(**tiny_params))])
    pipeline.fit(X)
    scaled = pipeline.named_steps["scale"].transform(X)
    np.testing.assert_array_equal(pipeline.score_samples(X),
                                  pipeline.named_steps["maf"].score_samples(scaled))
    assert isinstance(pipeline.score(X), float)


def test_grid_search_selects_by_held_out_log_likelihood():
    X, _ = paper_example(300, random_state=0)
    grid = {"n_hidden_layers": [1, 2], "n_hidden_units": [4, 16]}
    base = MAFDensity(n_transforms=2, max_iter=8, random_state=0)
    sequential = GridSearchCV(base, grid, cv=3, n_jobs=1).fit(X)
    parallel = GridSearchCV(base, grid, cv=3, n_jobs=2).fit(X)
    np.testing.assert_array_equal(sequential.cv_results_["mean_test_score"],
                                  parallel.cv_results_["mean_test_score"])
    scores = sequential.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    assert sequential.best_score_ == scores.max()
    assert sequential.best_params_ == sequential.cv_results_["params"][np.argmax(scores)]
    # The default score is the mean held-out log-likelihood of each fold.
    folds = cross_val_score(clone(base).set_params(**sequential.best_params_), X, cv=3)
    assert folds.mean() == pytest.approx(sequential.best_score_)


def test_clone_gives_an_unfitted_copy_with_the_same_parameters(tiny_params):
    X, _ = paper_example(100, random_state=0)
    model = MAFDensity(**tiny_params, input_order=[1, 0]).fit(X)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "module_")
    np.testing.assert_array_equal(copy.fit(X).score_samples(X), model.score_samples(X))


def test_dataframe_feature_names_and_pandas_output(tiny_params):
    pd = pytest.importorskip("pandas")
    X, _ = paper_example(100, random_state=0)
    frame = pd.DataFrame(X, columns=["x1", "x2"])
    model = MAFDensity(**tiny_params).set_output(transform="pandas").fit(frame)
    assert list(model.feature_names_in_) == ["x1", "x2"]
    U = model.transform(frame)
    assert list(U.columns) == ["mafdensity0", "mafdensity1"]
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(model.score_samples(frame), model.score_samples(X))
    with pytest.raises(ValueError, match="feature names should match"):
        model.score_samples(frame.rename(columns={"x1": "other"}))


def test_the_log_likelihood_scorer_is_the_mean_score_and_selects_like_it():
    X = np.random.RandomState(0).normal(size=(300, 2)) * [1.0, 3.0]
    params = {"n_hidden_units": [4, 16]}
    base = MAFDensity(n_transforms=2, max_iter=10, random_state=0)
    by_score = GridSearchCV(base, params, cv=3).fit(X)
    by_scorer = GridSearchCV(base, params, cv=3, scoring=log_likelihood_scorer).fit(X)
    np.testing.assert_allclose(by_scorer.cv_results_["mean_test_score"],
                               by_score.cv_results_["mean_test_score"])
    model = by_scorer.best_estimator_
    assert log_likelihood_scorer(model, X) == pytest.approx(np.mean(model.score_samples(X)))
