"""Torch uses the threads a fit was given, never more, and gets its count back afterwards."""

import threading

import numpy as np
import pytest
import torch

import skmaf._flow_estimator
import skmaf._runtime.threads
import skmaf._training.streaming
from skmaf import MAFDensity
from skmaf._runtime.chunks import evaluate_in_chunks
from skmaf._runtime.threads import (
    THREADS_VARIABLE,
    thread_budget,
    torch_threads_within_budget,
    worker_budget,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def torch_threads():
    """Set torch's thread count for the test; back to conftest's single thread after."""
    yield torch.set_num_threads
    torch.set_num_threads(1)


def _spy(monkeypatch, module, name, seen):
    original = getattr(module, name)

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, recording)


def test_fit_partial_fit_and_scoring_use_the_threads_given_then_restore(
        monkeypatch, torch_threads, gaussian_data, tiny_params):
    # As in a loky or Dask worker whose OMP_NUM_THREADS was set after torch's import.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch_threads(2)
    seen = []
    _spy(monkeypatch, skmaf._flow_estimator, "train_flow", seen)
    _spy(monkeypatch, skmaf._training.streaming, "run_epoch", seen)
    _spy(monkeypatch, skmaf._flow_estimator, "evaluate_in_chunks", seen)

    model = MAFDensity(**tiny_params).fit(gaussian_data)
    model.partial_fit(gaussian_data)
    model.score_samples(gaussian_data)
    model.inverse_transform(model.transform(gaussian_data))
    assert seen == [1] * 5
    assert torch.get_num_threads() == 2


def test_the_count_is_restored_when_the_block_raises(monkeypatch, torch_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch_threads(2)
    with pytest.raises(KeyError), torch_threads_within_budget():
        assert torch.get_num_threads() == 1
        raise KeyError
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("omp_num_threads", ["4", "", "garbage"])
def test_a_user_limit_is_never_raised(monkeypatch, torch_threads, omp_num_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", omp_num_threads)
    monkeypatch.setattr(skmaf._runtime.threads, "cpu_count", lambda: 4)
    torch_threads(1)
    assert thread_budget(1) == 1


def test_one_thread_unless_more_are_asked_for(monkeypatch, torch_threads):
    """torch's default count (one per core) is not a request: skmaf uses one thread."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    monkeypatch.setattr(skmaf._runtime.threads, "cpu_count", lambda: 4)
    torch_threads(4)
    assert thread_budget(1) == 1
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    assert thread_budget(1) == 3
    monkeypatch.setenv(THREADS_VARIABLE, "8")  # never more than torch's own count
    assert thread_budget(1) == 4


def test_a_nested_computation_keeps_the_outer_budget(monkeypatch, torch_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(THREADS_VARIABLE, "4")
    monkeypatch.setattr(skmaf._runtime.threads, "cpu_count", lambda: 4)
    torch_threads(4)
    with torch_threads_within_budget() as outer, torch_threads_within_budget() as inner:
        assert outer == inner == 4


def test_computations_running_side_by_side_share_the_cpus(monkeypatch, torch_threads):
    """As in joblib's threading backend: each thread gets its own share and count."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(THREADS_VARIABLE, "4")
    monkeypatch.setattr(skmaf._runtime.threads, "cpu_count", lambda: 4)
    torch_threads(4)  # threads inherit this count
    both_inside = threading.Barrier(2)
    seen = []

    def compute():
        with torch_threads_within_budget() as budget:
            both_inside.wait(timeout=10)
            seen.append((budget, torch.get_num_threads()))
            both_inside.wait(timeout=10)  # neither restores before the other has looked

    workers = [threading.Thread(target=compute) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # The first to start had the CPUs to itself; the second got half of them.
    assert sorted(seen) == [(2, 2), (4, 4)]
    assert torch.get_num_threads() == 4


def test_threaded_grid_search_gives_the_sequential_results(gaussian_data):
    from joblib import parallel_backend
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(MAFDensity(n_transforms=2, max_iter=3, random_state=0),
                          {"n_hidden_units": [4, 8]}, cv=2)
    sequential = search.fit(gaussian_data).cv_results_["mean_test_score"]
    with parallel_backend("threading", n_jobs=2):
        threaded = search.fit(gaussian_data).cv_results_["mean_test_score"]
    np.testing.assert_array_equal(threaded, sequential)


@pytest.mark.parametrize("n_workers", [2, 3, 8])
def test_chunks_shared_among_threads_give_the_result_of_one_thread(n_workers):
    """Same chunks, same single-threaded kernels: bit for bit the same output,
    in order, padding dropped, without gradients, on one torch thread each."""
    z = np.random.RandomState(0).normal(size=(1001, 3))
    weight = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    seen = []

    def function(chunk):
        seen.append((threading.current_thread().name, torch.get_num_threads(),
                     torch.is_grad_enabled()))
        return torch.tanh(chunk @ weight)

    one = evaluate_in_chunks(function, z, torch.device("cpu"), torch.float64, 64,
                             row_multiple=8)
    shared = evaluate_in_chunks(function, z, torch.device("cpu"), torch.float64, 64,
                                row_multiple=8, n_workers=n_workers)
    assert torch.equal(one, shared) and shared.shape == (1001, 4)
    in_workers = seen[16:]  # 16 chunks of 64 rows, first on this thread
    assert len({name for name, _, _ in in_workers}) > 1
    assert all(name.startswith("skmaf-chunk") for name, _, _ in in_workers)
    assert all(count == 1 and not grad for _, count, grad in in_workers)


def test_an_error_in_a_chunk_reaches_the_caller():
    def function(chunk):
        if chunk[0, 0] > 100:
            raise FloatingPointError("chunk")
        return chunk

    z = np.zeros((300, 1))
    z[250] = 1000.0
    with pytest.raises(FloatingPointError, match="chunk"):
        evaluate_in_chunks(function, z, torch.device("cpu"), torch.float64, 50, n_workers=3)


def test_the_workers_are_the_cpus_share_within_every_limit(monkeypatch):
    monkeypatch.setattr(skmaf._runtime.threads, "cpu_count", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert worker_budget(n_running=1, caller_threads=16) == 16
    assert worker_budget(n_running=4, caller_threads=16) == 4  # side-by-side computations
    assert worker_budget(n_running=1, caller_threads=1) == 1  # torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a joblib worker's share
    assert worker_budget(n_running=1, caller_threads=16) == 2
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    assert worker_budget(n_running=1, caller_threads=16) == 1


def test_scoring_shares_its_chunks_among_threads_with_the_same_result(
        monkeypatch, torch_threads, tiny_params):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(skmaf._runtime.threads, "cpu_count", lambda: 4)
    X = np.random.RandomState(0).normal(size=(300, 3))
    rows = np.random.RandomState(1).normal(size=(20_000, 3))
    model = MAFDensity(**tiny_params).fit(X)
    alone = model.score_samples(rows), model.transform(rows)
    torch_threads(4)
    workers = []
    original = skmaf._flow_estimator.evaluate_in_chunks

    def recording(*args, n_workers=1, **kwargs):
        workers.append(n_workers)
        return original(*args, n_workers=n_workers, **kwargs)

    monkeypatch.setattr(skmaf._flow_estimator, "evaluate_in_chunks", recording)
    shared = model.score_samples(rows), model.transform(rows)
    assert workers == [4, 4]
    np.testing.assert_array_equal(alone[0], shared[0])
    np.testing.assert_array_equal(alone[1], shared[1])
    assert torch.get_num_threads() == 4
