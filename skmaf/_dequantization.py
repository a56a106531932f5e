"""Integer-valued columns: uniform dequantization in training, cell probabilities in scoring.

A continuous density fitted to integers piles its mass onto the integers and
its log-likelihood grows without bound. As the MAF paper does for pixels, the
model is instead trained on ``x + v`` with ``v ~ U[0, 1)`` in those columns,
fresh noise every minibatch: it learns a density ``p`` whose mass over the
unit cell ``[x, x + 1)`` is the probability of the integer ``x``. Scoring then
returns, for those columns, the log of that mass,

    log P(x) = log integral_{[0, 1)^d} p(x + v) dv
             ~ log( (1/K) sum_k p(x + v_k) ),

with the K = :data:`N_CELL_POINTS` fixed points ``v_k`` of a centred Latin
hypercube: the same points for every row, so a row scores the same alone as
in any batch. In one column they are the K-point midpoint rule. The other
columns keep their density: the result is a probability for the integer
columns times a density for the others.
"""

from __future__ import annotations

import numpy as np

__all__ = ["N_CELL_POINTS", "cell_log_probability", "cell_points", "integer_valued",
           "noise_width", "resolve_dequantized"]

#: Points of the quadrature over each row's unit cell.
N_CELL_POINTS = 16

#: Below 2**52 float64 has a fractional part; from there on every value is an
#: integer and a unit of noise is below its resolution.
LARGEST_FRACTIONAL = 2.0**52


def integer_valued(X: np.ndarray) -> np.ndarray:
    """Columns whose every value is an integer that float64 can still offset by a fraction."""
    return np.all(X == np.round(X), axis=0) & (np.abs(X).max(axis=0) < LARGEST_FRACTIONAL)


def resolve_dequantized(dequantize, X: np.ndarray, feature_names=None) -> np.ndarray:
    """The indices of the columns to dequantize, from the ``dequantize`` parameter.

    ``"auto"``: the integer-valued columns (a constant one too: dequantized, it
    is uniform on its one cell, where it would be a spike). ``None``: none.
    Array-like: the named columns (indices, a boolean mask, or feature names
    when ``X`` had them), each of which must be integer-valued.
    """
    n_features = X.shape[1]
    if dequantize is None:
        return np.empty(0, dtype=np.int64)
    if isinstance(dequantize, str):  # "auto", the only string the constraints allow
        return np.flatnonzero(integer_valued(X))
    named = np.asarray(dequantize)
    if named.dtype.kind == "b":
        if named.shape != (n_features,):
            raise ValueError(f"A boolean dequantize mask must have one entry per feature "
                             f"({n_features}); got shape {named.shape}.")
        columns = np.flatnonzero(named)
    elif named.dtype.kind in "UO":
        if feature_names is None:
            raise ValueError("dequantize names features by string, but X has no feature "
                             "names; pass column indices.")
        lookup = {name: index for index, name in enumerate(feature_names)}
        unknown = [name for name in named.ravel() if name not in lookup]
        if unknown:
            raise ValueError(f"dequantize names unknown feature(s) {unknown}.")
        columns = np.array([lookup[name] for name in named.ravel()], dtype=np.int64)
    elif named.dtype.kind in "iu" and named.ndim <= 1:
        columns = named.ravel().astype(np.int64)
        if np.any((columns < 0) | (columns >= n_features)):
            raise ValueError(f"dequantize holds feature indices outside [0, {n_features}): "
                             f"{columns.tolist()}.")
    else:
        raise ValueError(f"dequantize must be 'auto', None, or an array of feature indices, "
                         f"a boolean mask or feature names; got {dequantize!r}.")
    columns = np.unique(columns)
    not_integer = columns[~integer_valued(X[:, columns])]
    if len(not_integer):
        raise ValueError(
            f"Feature(s) {not_integer.tolist()} are named in dequantize but are not "
            f"integer-valued below 2**52: unit dequantization noise means nothing there. "
            "Divide a column quantized with step s by s first (its log-densities then "
            "shift by log s), or leave it out of dequantize.")
    return columns


def noise_width(columns: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """The width of the unit noise in the model's standardised units (``1 / scale``
    in the dequantized ``columns``, 0 elsewhere), or None when no column is."""
    if columns is None or not len(columns):
        return None
    width = np.zeros(len(scale))
    width[columns] = 1.0 / scale[columns]
    return width


def cell_points(n_columns: int) -> np.ndarray:
    """The fixed points ``v_k`` in ``[0, 1)^n_columns``, shape (N_CELL_POINTS, n_columns).

    A centred Latin hypercube: in every column the K stratum midpoints
    ``(k + 1/2) / K``, each column's order permuted by a fixed seed (NumPy's
    legacy generator, whose stream does not change between versions).
    """
    rng = np.random.RandomState(0)
    midpoints = (np.arange(N_CELL_POINTS) + 0.5) / N_CELL_POINTS
    return np.column_stack([rng.permutation(midpoints) for _ in range(n_columns)]) \
        if n_columns else np.empty((N_CELL_POINTS, 0))


def cell_log_probability(log_density, X: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``log (1/K) sum_k exp(log_density(X + v_k))``, ``v_k`` the cell points in
    ``columns`` (zero elsewhere): each row's log-probability of its unit cell in
    those columns, times its density in the others. ``log_density`` maps an
    (n, D) float64 array to n values; it is called K times, on n rows each, so
    memory stays that of one evaluation."""
    shifted = X.astype(np.float64, copy=True)
    total = None
    for offset in cell_points(len(columns)):
        shifted[:, columns] = X[:, columns] + offset
        log_p = log_density(shifted)
        total = log_p if total is None else np.logaddexp(total, log_p)
    return total - np.log(N_CELL_POINTS)


def check_still_integer(X: np.ndarray, columns: np.ndarray) -> None:
    """Raise if a chunk given to ``partial_fit`` is not integer-valued where the
    model dequantizes."""
    not_integer = columns[~integer_valued(X[:, columns])] if len(columns) else columns
    if len(not_integer):
        raise ValueError(
            f"Feature(s) {not_integer.tolist()} were dequantized as integer-valued in the "
            "first chunk, but this chunk has non-integer values in them. Set dequantize "
            "to None or name the integer columns, and start over with fit.")
