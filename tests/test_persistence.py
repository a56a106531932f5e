"""Fitted models survive pickle, joblib and a change of machine, scoring identically."""

import copy
import io
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone

from skmaf import MAFDensity
from skmaf.exceptions import DeviceWarning

from ._common import estimator_id, tiny_estimators

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(params=tiny_estimators(), ids=estimator_id)
def fitted(request, gaussian_data):
    return clone(request.param).fit(gaussian_data)


def _assert_same_model(loaded, original, X):
    np.testing.assert_array_equal(loaded.score_samples(X), original.score_samples(X))
    if hasattr(original, "transform"):
        np.testing.assert_array_equal(loaded.transform(X), original.transform(X))
    np.testing.assert_array_equal(loaded.sample(7, random_state=3),
                                  original.sample(7, random_state=3))


def test_pickle_round_trip_gives_identical_results(fitted, gaussian_data):
    loaded = pickle.loads(pickle.dumps(fitted))
    _assert_same_model(loaded, fitted, gaussian_data)
    # Pickling must not have unfitted the original (the live-__dict__ trap).
    assert isinstance(fitted.module_, torch.nn.Module)
    assert loaded.device_ == torch.device("cpu")


def test_joblib_round_trip_with_memory_mapping(fitted, gaussian_data, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    _assert_same_model(joblib.load(path, mmap_mode="r"), fitted, gaussian_data)


def test_deepcopy_gives_an_independent_model(fitted, gaussian_data):
    duplicate = copy.deepcopy(fitted)
    _assert_same_model(duplicate, fitted, gaussian_data)
    assert duplicate.module_ is not fitted.module_


def test_model_from_a_missing_device_loads_on_cpu_with_a_warning(fitted, gaussian_data):
    """A model pickled on a GPU machine, loaded where that GPU does not exist."""
    state = fitted.__getstate__()
    state["device_"] = torch.device("cuda", 7)
    restored = type(fitted).__new__(type(fitted))
    with pytest.warns(DeviceWarning, match="not available here"):
        restored.__setstate__(state)
    assert restored.device_ == torch.device("cpu")
    _assert_same_model(restored, fitted, gaussian_data)


@pytest.mark.parametrize("saved_format", [None, 1, 3], ids=["unmarked", "older", "newer"])
def test_a_model_of_another_layout_is_refused(fitted, saved_format):
    """A pickle from a skmaf whose layers meant something else must not load and
    score silently wrong (layout 1: the MAF's MADEs output mu, not the shift)."""
    state = fitted.__getstate__()
    if saved_format is None:
        del state["_model_format"]
    else:
        state["_model_format"] = saved_format
    restored = type(fitted).__new__(type(fitted))
    with pytest.raises(ValueError, match=r"layout (1|3); this skmaf reads layout 2 only"):
        restored.__setstate__(state)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_fitted_model_scores_the_same_on_a_cpu_only_process(gaussian_data, tiny_params):
    model = MAFDensity(**{**tiny_params, "device": "cuda"}).fit(gaussian_data)
    assert model.device_.type == "cuda"
    code = (
        "import pickle, sys, warnings, numpy as np\n"
        "warnings.simplefilter('ignore')\n"
        "model, X = pickle.load(sys.stdin.buffer)\n"
        "assert model.device_.type == 'cpu'\n"
        "np.save(sys.stdout.buffer, model.score_samples(X))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps((model, gaussian_data)),
        capture_output=True, check=True, env={"CUDA_VISIBLE_DEVICES": "", "PATH": ""},
    )
    cpu_scores = np.load(io.BytesIO(result.stdout))
    # float32 scoring: the same weights, different kernels on each device.
    np.testing.assert_allclose(cpu_scores, model.score_samples(gaussian_data),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_and_cpu_fits_score_alike(gaussian_data):
    params = dict(n_transforms=2, n_hidden_units=8, max_iter=3, random_state=0)
    on_cpu = MAFDensity(**params, device="cpu").fit(gaussian_data)
    on_gpu = MAFDensity(**params, device="cuda").fit(gaussian_data)
    # Different float32 kernels: not bit-identical, but the same model.
    np.testing.assert_allclose(on_gpu.score_samples(gaussian_data),
                               on_cpu.score_samples(gaussian_data), atol=1e-3)
    np.testing.assert_array_equal(on_gpu.sample(3, random_state=0).shape, (3, 3))


def test_a_pickle_from_before_polyak_averaging_loads_and_refits_as_it_was_trained(
        fitted, gaussian_data):
    state = fitted.__getstate__()
    del state["ema_decay"]  # as saved by a skmaf without the parameter
    restored = type(fitted).__new__(type(fitted))
    restored.__setstate__(state)
    _assert_same_model(restored, fitted, gaussian_data)
    assert restored.get_params()["ema_decay"] == 0.0
    refit = clone(restored).fit(gaussian_data)
    expected = clone(fitted).set_params(ema_decay=0.0).fit(gaussian_data)
    np.testing.assert_array_equal(refit.score_samples(gaussian_data),
                                  expected.score_samples(gaussian_data))
