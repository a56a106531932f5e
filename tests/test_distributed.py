"""Model search on a real Dask cluster through joblib's Dask backend."""

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

from skmaf import MAFDensity
from skmaf._runtime.threads import thread_budget

from ._common import paper_example

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_searches_on_a_dask_cluster_equal_the_sequential_searches():
    X, _ = paper_example(200, random_state=0)
    estimator = MAFDensity(n_transforms=2, max_iter=5, random_state=0)
    grid = {"n_hidden_units": [4, 16], "learning_rate_init": [1e-3, 1e-2]}
    searches = [
        GridSearchCV(estimator, grid, cv=2),
        RandomizedSearchCV(estimator, {**grid, "n_hidden_layers": [1, 2]}, n_iter=3, cv=2,
                           random_state=0),
    ]
    sequential = [clone(search).set_params(n_jobs=1).fit(X) for search in searches]

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        # Dask's nanny gives each worker process one thread (OMP_NUM_THREADS=1).
        # Run on every worker at once, this also imports skmaf there in parallel.
        assert set(client.run(thread_budget, 1).values()) == {1}
        with joblib.parallel_backend("dask"):
            on_dask = [clone(search).fit(X) for search in searches]

    for local, remote in zip(sequential, on_dask):
        assert remote.cv_results_["params"] == local.cv_results_["params"]
        np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                      local.cv_results_["mean_test_score"])
        assert remote.best_params_ == local.best_params_
        np.testing.assert_array_equal(remote.best_estimator_.score_samples(X),
                                      local.best_estimator_.score_samples(X))
