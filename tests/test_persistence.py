"""Fitted models survive pickle, joblib and a change of machine, scoring identically."""

import copy
import io
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone

from skmaf import MAFDensity
from skmaf.exceptions import DeviceWarning
from skmaf.flows import DefensiveNormal, StandardNormal

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


def test_a_model_from_a_newer_skmaf_is_refused(fitted):
    state = fitted.__getstate__()
    state["module_"] = {**state["module_"], "format": 4}
    restored = type(fitted).__new__(type(fitted))
    with pytest.raises(ValueError, match="newer skmaf .*layout 4"):
        restored.__setstate__(state)


@pytest.mark.parametrize("saved_format", [None, 1], ids=["unmarked", "layout-1"])
def test_a_whole_module_pickle_of_an_unreadable_layout_is_refused(fitted, saved_format):
    """Layout 1 (the MAF's MADEs output mu, not the shift) would load and score
    silently wrong in today's layers."""
    state = fitted.__getstate__()
    state["module_"] = b"a torch.save blob"
    if saved_format is not None:
        state["_model_format"] = saved_format
    restored = type(fitted).__new__(type(fitted))
    with pytest.raises(ValueError, match="layout 1, which this skmaf cannot read"):
        restored.__setstate__(state)


def test_a_pickle_from_skmaf_0_1_0_loads_and_scores_as_it_did():
    """tests/data/maf_skmaf_0.1.0.pkl: MAFDensity(n_transforms=2, n_hidden_units=8,
    max_iter=3, random_state=0) fitted on RandomState(0).normal(size=(100, 2)) by skmaf
    0.1.0, which pickled the whole torch module; it printed these scores."""
    with open(Path(__file__).parent / "data" / "maf_skmaf_0.1.0.pkl", "rb") as file:
        model = pickle.load(file)
    X = np.random.RandomState(0).normal(size=(100, 2))
    np.testing.assert_allclose(model.score_samples(X[:3]),
                               [-3.12176404, -4.95789415, -4.80828212], rtol=1e-7)
    assert b"skmaf.flows" not in pickle.dumps(model)  # saved again in today's format


@pytest.mark.parametrize("estimator", tiny_estimators(), ids=estimator_id)
@pytest.mark.parametrize("how", ["fit", "partial_fit"])
def test_a_pickle_names_no_class_of_the_torch_layer(estimator, how, gaussian_data):
    """Parameters and buffers as arrays, the architecture as plain values: the torch
    layer can change its modules without breaking saved models."""
    model = getattr(estimator, how)(gaussian_data)
    blob = pickle.dumps(model)
    assert b"skmaf.flows" not in blob and b"torch.nn" not in blob
    _assert_same_model(pickle.loads(blob), model, gaussian_data)


def test_a_pickle_rebuilds_the_architecture_it_was_fitted_with(gaussian_data):
    """Not the parameters set since, and random input orders as they were drawn."""
    model = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=3, input_order="random",
                       random_state=0).fit(gaussian_data)
    model.set_params(n_hidden_units=32, n_transforms=4, input_order="sequential")
    restored = pickle.loads(pickle.dumps(model))
    _assert_same_model(restored, model, gaussian_data)
    assert [t.made.order.tolist() for t in restored.module_.transforms[::2]] == [
        t.made.order.tolist() for t in model.module_.transforms[::2]]


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
    # As saved by a skmaf without these parameters: no averaging, a constant step size.
    del state["ema_decay"], state["learning_rate"]
    restored = type(fitted).__new__(type(fitted))
    restored.__setstate__(state)
    _assert_same_model(restored, fitted, gaussian_data)
    assert restored.get_params()["ema_decay"] == 0.0
    assert restored.get_params()["learning_rate"] == "constant"
    refit = clone(restored).fit(gaussian_data)
    expected = clone(fitted).set_params(ema_decay=0.0, learning_rate="constant").fit(gaussian_data)
    np.testing.assert_array_equal(refit.score_samples(gaussian_data),
                                  expected.score_samples(gaussian_data))


def test_a_pickle_from_before_the_defensive_base_loads_with_its_standard_normal_base(
        gaussian_data):
    """A model saved before ``tail_weight`` existed was trained on N(0, I): it is
    rebuilt with that base, scores as it did, and reports ``tail_weight=0``, so that
    a clone refits it the same way."""
    fitted = MAFDensity(n_transforms=2, n_hidden_units=8, max_iter=3, tail_weight=0.0,
                        random_state=0).fit(gaussian_data)
    state = fitted.__getstate__()
    del state["tail_weight"]
    architecture = dict(state["_fitted_architecture"])
    architecture["parameters"] = {name: value for name, value in
                                  architecture["parameters"].items() if name != "tail_weight"}
    state["_fitted_architecture"] = architecture
    restored = MAFDensity.__new__(MAFDensity)
    restored.__setstate__(state)
    assert type(restored.module_.base) is StandardNormal
    assert restored.get_params()["tail_weight"] == 0.0
    np.testing.assert_array_equal(restored.score_samples(gaussian_data),
                                  fitted.score_samples(gaussian_data))
    # The default is the defensive base, and it survives a round trip.
    default = clone(fitted).set_params(tail_weight=1e-4).fit(gaussian_data)
    loaded = pickle.loads(pickle.dumps(default))
    assert type(loaded.module_.base) is DefensiveNormal
    np.testing.assert_array_equal(loaded.score_samples(gaussian_data),
                                  default.score_samples(gaussian_data))
