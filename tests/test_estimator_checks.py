"""scikit-learn's own conformance suite, on tiny configurations (as sklearn does with
``INIT_PARAMS`` for its own estimators), plus the checks it never runs for third parties."""

import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmaf import MAFDensity

from ._common import TINY

ESTIMATORS = [
    MAFDensity(**TINY),
    MAFDensity(**TINY, batch_norm=False, activation="tanh", input_order="random"),
    MAFDensity(**TINY, early_stopping=False),
]

# Every check is expected to pass: no expected_failed_checks, strict.
pytestmark = pytest.mark.filterwarnings(f"ignore::{ConvergenceWarning.__module__}.ConvergenceWarning")


@parametrize_with_checks(ESTIMATORS, xfail_strict=True)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


EXTRA_CHECKS = [
    "check_param_validation",
    "check_inplace_ensure_writeable",
    "check_get_feature_names_out_error",
    "check_transformer_get_feature_names_out",
    "check_transformer_get_feature_names_out_pandas",
    "check_set_output_transform",
    "check_set_output_transform_pandas",
    "check_global_output_transform_pandas",
    "check_dataframe_column_names_consistency",
]


@pytest.mark.parametrize("estimator", ESTIMATORS[:1], ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check_name", EXTRA_CHECKS)
@pytest.mark.filterwarnings("ignore:X (does not have valid|has) feature names:UserWarning")
def test_checks_that_check_estimator_skips(estimator, check_name):
    pytest.importorskip("pandas")
    getattr(estimator_checks, check_name)(type(estimator).__name__, estimator)
