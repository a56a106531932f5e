"""Feedback during long fits: a line per epoch, or a progress bar on a terminal or notebook."""

from __future__ import annotations

import sys
import time

__all__ = ["make_reporter"]


def _interactive() -> bool:
    """A terminal, or a Jupyter kernel (whose stderr is no tty but renders widgets)."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


class _Reporter:
    """Prints ``Iteration k, loss = ...`` lines, MLPRegressor-style, with timing."""

    def __init__(self, max_iter: int):
        self.max_iter = max_iter
        self.start = time.perf_counter()

    def _fields(self, epoch, train_nll, validation_score, best):
        elapsed = time.perf_counter() - self.start
        left = elapsed / epoch * (self.max_iter - epoch)
        fields = {"loss": f"{train_nll:.6f}"}
        if validation_score is not None:
            fields["validation score"] = f"{validation_score:.6f}"
            fields["best"] = f"{best:.6f}"
        fields["elapsed"] = f"{elapsed:.1f}s"
        # An upper bound: early stopping usually ends the fit sooner.
        fields["left"] = f"<= {left:.0f}s"
        return fields

    def update(self, epoch, train_nll, validation_score, best) -> None:
        fields = self._fields(epoch, train_nll, validation_score, best)
        text = ", ".join(f"{name} = {value}" for name, value in fields.items())
        print(f"Iteration {epoch}, {text}", flush=True)

    def close(self) -> None:
        pass


class _BarReporter(_Reporter):
    """A tqdm bar over epochs whose postfix carries the same numbers."""

    def __init__(self, max_iter: int):
        super().__init__(max_iter)
        from tqdm.auto import tqdm

        self.bar = tqdm(total=max_iter, unit="epoch", leave=True)

    def update(self, epoch, train_nll, validation_score, best) -> None:
        fields = self._fields(epoch, train_nll, validation_score, best)
        del fields["elapsed"], fields["left"]  # tqdm shows its own times
        self.bar.set_postfix(fields, refresh=False)
        self.bar.update(epoch - self.bar.n)

    def close(self) -> None:
        # A fit that stopped early ends the bar where it stopped, not at max_iter.
        self.bar.total = self.bar.n
        self.bar.refresh()
        self.bar.close()


def make_reporter(verbose: int, max_iter: int) -> _Reporter | None:
    """None when silent; a bar when interactive and tqdm is installed; else printed lines."""
    if not verbose:
        return None
    if _interactive():
        try:
            return _BarReporter(max_iter)
        except ImportError:
            pass
    return _Reporter(max_iter)
