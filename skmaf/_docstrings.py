"""Docstring fragments shared by every skmaf estimator, so each class documents
its full interface without the text being written three times."""

import inspect

MAF_ARCHITECTURE = """\
    n_transforms : int, default=5
        Number of MADEs, the paper's K.
    n_hidden_layers : int, default=1
        Hidden layers of each MADE, the paper's L.
    n_hidden_units : int, default=100
        Units in each hidden layer, the paper's H.
    activation : {"relu", "tanh"}, default="relu"
        Hidden-unit nonlinearity.
    batch_norm : bool, default=True
        Batch normalisation after each MADE, as in the paper's appendix B:
        minibatch statistics in training, whole-training-set statistics when
        evaluating.
    input_order : {"sequential", "reverse", "random"} or array-like of int, \
            default="sequential"
        Autoregressive order of the first MADE; each next MADE reverses the
        order of the one before. ``"random"`` gives each MADE its own random
        order (drawn from ``random_state``). An array must be a permutation of
        ``range(n_features)``.
    n_components : int, default=%(n_components)s
        Components of the base density, the paper's C: 1 is N(0, I); more is a
        MADE whose conditionals are mixtures of that many Gaussians, under the
        flow (the paper's MAF MoG).
"""

TAIL_WEIGHT_PARAMETER = """\
    tail_weight : float in [0, 1), default=%(tail_weight)s
        Weight of a wide component in the Gaussian base, whose density is
        ``(1 - tail_weight) N(0, I) + tail_weight N(0, 10**2 I)`` (a
        defensive mixture). A row that breaks a pattern of the training data
        (a column nearly determined by the others, a spike of repeated
        values) can land far out in the base, even inside the training
        range: N(0, I) charges it ``|u|**2 / 2`` nats, the wide component at
        most ``|u|**2 / 200 - log(tail_weight) + 3.2 D`` (D columns). Where
        the base variables are typical it costs at most
        ``-log(1 - tail_weight)`` nats a row. Rows far out in the base score
        higher than under N(0, I), and so less apart from the others, which
        matters for anomaly scores (``benchmarks/README.md``, "The defensive
        base"). :meth:`sample` draws a fraction ``tail_weight`` of its rows
        from the wide component. 0 is the paper's N(0, I).
"""

#: What ``tail_weight`` means next to ``n_components``.
TAIL_WEIGHT_WITH_MIXTURES = """\
        Not used when ``n_components > 1``: the mixture base has wide
        components of its own.
"""

MAF_ARCHITECTURE += TAIL_WEIGHT_PARAMETER + TAIL_WEIGHT_WITH_MIXTURES

DEQUANTIZE_PARAMETER = """\
    dequantize : "auto", array-like or None, default="auto"
        Columns of integers to dequantize. ``"auto"``: every integer-valued
        column of the training data (below 2**52, where float64 still has
        fractions), constant ones included, which become uniform on their one
        cell instead of a spike. An array: the columns named by index,
        boolean mask or feature name, each integer-valued. None: no column.
        The model is trained on ``x + v``, ``v ~ U[0, 1)`` in those columns,
        with fresh noise every minibatch (as the MAF paper does for pixels), so
        it learns a density whose mass over the unit cell ``[x, x + 1)`` is the
        probability of the integer ``x``. :meth:`score_samples` then returns
        the log of that probability for those columns (estimated by a fixed
        16-point quadrature over the cell, the same for every row, so a row
        scores the same alone as in any batch) plus the log-density of the
        other columns; :meth:`sample` returns integers in those columns. See
        ``dequantized_features_``.
"""

TRAINING_PARAMETERS = """\
    max_iter : int, default=%(max_iter)s
        Maximum number of epochs.
    batch_size : int or "auto", default=%(batch_size)s
        Rows per minibatch (capped at the training-set size). ``"auto"``: one
        fortieth of the training rows, at least 100 and at most 500. The last
        rows of an epoch are spread over the batches, so no batch is ragged.
    learning_rate : {"adaptive", "constant"}, default=%(learning_rate)s
        Adam's step-size schedule. ``"constant"``: ``learning_rate_init``
        throughout; training stops at the first plateau (``n_iter_no_change``
        epochs without an improvement larger than ``tol``). ``"adaptive"``: the
        first two plateaus divide the step size by 10 and training goes on from
        the best weights so far; the third stops it. Not used by
        ``partial_fit``. The MAF paper's protocol is ``learning_rate="constant",
        batch_size=100, learning_rate_init=1e-4, n_iter_no_change=30``.
    learning_rate_init : float or "auto", default=%(learning_rate_init)s
        Adam's initial step size. ``"auto"``: ``2e-3 * sqrt(batch_size / 100)``,
        the square-root rule that keeps Adam's course across batch sizes.
    alpha : float, default=%(alpha)s
        L2 penalty on the connection weights, with ``MLPRegressor``'s meaning:
        ``0.5 * alpha * sum(W**2) / batch_size`` is added to each minibatch's
        mean negative log-likelihood.
    ema_decay : float in [0, 1), default=%(ema_decay)s
        Polyak averaging: training keeps an exponential moving average of the
        weights, updated after every minibatch step with this decay (at most
        ``(1 + t) / (10 + t)`` at step ``t``, so that short fits are not held
        near their initial weights), and validates and keeps the average
        instead of the last iterate; Adam goes on from the iterate. 0 turns it
        off. Not used by ``partial_fit``.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the data, stop when its
        log-likelihood stops improving, and restore the best epoch's weights.
        If False, stop when the training loss stops improving and keep the
        last weights.
    validation_fraction : float, default=0.1
        Fraction of rows held out for early stopping.
    n_iter_no_change : int, default=%(n_iter_no_change)s
        Epochs without an improvement larger than ``tol`` that make a plateau,
        which stops training or, with ``learning_rate="adaptive"``, first
        lowers the step size.
    tol : float, default=1e-4
        Improvement in mean log-likelihood (nats per sample) that counts.
    device : str or torch.device, default="auto"
        Where to train and evaluate: ``"auto"`` (CUDA when available, else the
        CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... A fitted model loads and
        scores on any machine; see Notes.
    compile : bool, default=False
        Compile the training step (forward and backward pass) with
        ``torch.compile``: faster steps after a one-off compilation of seconds
        per architecture and process (refits of the same architecture reuse
        it; torch's on-disk cache shortens it in later processes), so worth it
        for fits that take minutes, not for small ones (benchmarks/README.md
        has the figures). Needs a C++ compiler on the CPU (Triton on a GPU);
        where compilation fails, training falls back to eager mode with a
        warning. ``partial_fit`` always runs eagerly. No effect on
        ``MAFDensity`` (MAF and MAF MoG), whose flow skmaf's accelerator
        trains with a hand-written backward pass instead, nor with
        ``SKMAF_ACCELERATE=0``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the validation split, the minibatch
        order and random input orders. An int gives identical refits on the
        same device.
    verbose : int, default=0
        Print the training loss and validation score of each epoch if > 0.
"""

MODEL_ATTRIBUTES = """\
    module_ : skmaf.flows.Flow
        The fitted torch model, in float64 and evaluation mode: the reference
        model of :mod:`skmaf.flows`, usable on its own (``module_.log_prob``
        on standardised rows; its masked layers stay autoregressive whatever
        updates their weights).
    device_ : torch.device
        Device the model lives on.
    n_parameters_ : int
        Connection weights of the model (biases and batch-norm parameters not
        counted; masked-out weights not counted): the count of the paper's
        appendix C, exact for this model's masks.
"""

TRAINING_ATTRIBUTES = """\
    n_iter_ : int
        Epochs run; each ``partial_fit`` call adds one.
    best_iter_ : int
        Epoch whose weights were kept.
    loss_curve_ : list of float
        Training mean negative log-likelihood (nats per sample, data units) of
        each epoch, with minibatch batch-norm statistics.
    validation_scores_ : list of float or None
        Validation mean log-likelihood of each epoch; None without early
        stopping, and after ``partial_fit``.
    best_validation_score_ : float or None
        The best of ``validation_scores_``; None when that is None.
"""

DENSITY_ATTRIBUTES = """\
    shift_, scale_ : ndarray of shape (n_features_in_,)
        Internal standardisation ``z = (x - shift_) / scale_``: the mean and
        standard deviation of the training rows.
    n_samples_seen_ : int
        Rows those moments come from: the rows given to ``fit``, or, with
        ``partial_fit``, every row passed so far (a row passed twice counts twice).
    dequantized_features_ : ndarray of int
        Indices of the columns dequantized (see ``dequantize``), in which
        log-densities are cell probabilities and samples are integers.
"""

FEATURE_ATTRIBUTES = """\
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.
"""

FITTED_ATTRIBUTES = MODEL_ATTRIBUTES + DENSITY_ATTRIBUTES + TRAINING_ATTRIBUTES + \
    FEATURE_ATTRIBUTES


FAR_FROM_THE_DATA = """\
    Far from the data: every network of the model sees its inputs clamped to
    the range the training rows span at its layer (recorded with the
    batch-norm statistics), so beyond that range each layer is affine. The
    model stays an exact, normalised density, and far out the log-density
    along any ray is a concave quadratic in the distance ``t``,
    ``log p = a - b t - c t**2``, with ``w`` the slope of the model's map at
    the edge of the data: ``c = |w|**2 / 200`` where the wide base component
    takes over (``tail_weight > 0``, up to terms that vanish like
    ``exp(-t**2)``), exactly ``|w|**2 / 2`` for N(0, I) (``tail_weight=0``),
    and with a mixture base that of its widest component. It falls smoothly,
    never by the compounding of stacked scales that networks extrapolating
    beyond the data would give.

"""


def fill_docstring(cls):
    """Class decorator: put the shared fragments in place of their markers.

    Defaults that differ between estimators (``alpha``, the training schedule) are
    read from the class's own ``__init__``, so the text cannot disagree with
    the code.
    """
    defaults = {name: parameter.default for name, parameter
                in inspect.signature(cls.__init__).parameters.items()}
    fragments = {
        "maf_architecture": MAF_ARCHITECTURE,
        "tail_weight_parameter": TAIL_WEIGHT_PARAMETER,
        "dequantize_parameter": DEQUANTIZE_PARAMETER,
        "training_parameters": TRAINING_PARAMETERS,
        "fitted_attributes": FITTED_ATTRIBUTES,
        "model_attributes": MODEL_ATTRIBUTES,
        "training_attributes": TRAINING_ATTRIBUTES,
        "feature_attributes": FEATURE_ATTRIBUTES,
        "far_from_the_data": FAR_FROM_THE_DATA,
    }
    doc = cls.__doc__
    for marker, text in fragments.items():
        for name in ("alpha", "ema_decay", "n_components", "tail_weight", "max_iter", "batch_size",
                     "learning_rate", "learning_rate_init", "n_iter_no_change"):
            if name in defaults:
                text = text.replace(f"%({name})s", repr(defaults[name]))
        doc = doc.replace(f"    %({marker})s\n", text)
    cls.__doc__ = doc
    return cls
