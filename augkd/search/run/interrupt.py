"""Ctrl-C of a search: Tune stops gracefully and saves every trial's state, and the
search knows it was interrupted, so that its running trials are recorded as
interrupted (resumable), not as failed or pruned.

Tune's own SIGINT handler stops the run but tells nobody. Here our handler receives
the first Ctrl-C, notes it, and asks Tune to stop through the handler Tune keeps on
SIGUSR1 (the same graceful stop); a second Ctrl-C raises KeyboardInterrupt at once.

A time budget (--time-budget) ends the search the same way, from a timer: Tune's own
``time_budget_s`` would stop the running trials as finished (recorded failed or pruned, and
never run again), whereas a budget's end is no verdict on a trial: it is kept resumable.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

_requested = threading.Event()
BUDGET_POLL_S = 0.5
"""How often a budget that ran out before Tune took over SIGUSR1 looks again."""
TUNE_NOTICES = ("Stop signal received", "Experiment has been interrupted")
"""Tune's own Ctrl-C lines; the second advises Tuner.restore instead of --resume."""


def interrupt_requested() -> bool:
    """Whether Ctrl-C stopped the search now running in this process."""
    return _requested.is_set()


class _DropTuneNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TUNE_NOTICES)


class CtrlC:
    """Context around `Tuner.fit` (on the main thread, where signals arrive)."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.active = False
        self._filter = _DropTuneNotices()
        self.budget_reached = False
        self._budget_timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> CtrlC:
        _requested.clear()
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set there; Tune leaves it alone too
        self.active = True
        self._env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self._usr1 = signal.getsignal(signal.SIGUSR1)
        self._sigint = signal.signal(signal.SIGINT, self._on_sigint)
        logging.getLogger("ray.tune.tune").addFilter(self._filter)
        return self

    @property
    def requested(self) -> bool:
        return _requested.is_set()

    def start_budget(self, seconds: float) -> bool:
        """End the search gracefully after ``seconds``; False where no signal handler can be
        set (not on the main thread), and Tune's own budget must do."""
        if not self.active:
            return False
        self._budget_timer = threading.Timer(seconds, self._on_budget)
        self._budget_timer.daemon = True
        self._budget_timer.start()
        return True

    def _on_budget(self) -> None:
        """Ask Tune to stop as Ctrl-C does: SIGUSR1 to this process, whose handler (Tune's,
        run on the main thread) sets its stop event; only while Tune's handler is set."""
        while True:
            with self._lock:
                if not self.active or _requested.is_set():
                    return
                tune_stop = signal.getsignal(signal.SIGUSR1)
                if callable(tune_stop) and tune_stop is not self._usr1:
                    self.budget_reached = True
                    _requested.set()
                    os.kill(os.getpid(), signal.SIGUSR1)
                    return
            time.sleep(BUDGET_POLL_S)  # Tune is still starting

    def _on_sigint(self, signum, frame) -> None:
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if _requested.is_set() or not callable(tune_stop) or tune_stop is self._usr1:
            raise KeyboardInterrupt  # a second Ctrl-C, or Tune is not running yet
        _requested.set()
        self.echo(
            "\n[search] Ctrl-C: stopping the trials and saving their state "
            "(press Ctrl-C again to stop at once)"
        )
        tune_stop(signum, frame)

    def __exit__(self, *exc_info: object) -> None:
        if self._budget_timer is not None:
            self._budget_timer.cancel()
        with self._lock:  # a budget firing now sends no signal once Tune's handler is gone
            if not self.active:
                return
            self.active = False
        signal.signal(signal.SIGINT, self._sigint)
        if self._usr1 is not None:  # None: a handler set outside Python, left as it is
            signal.signal(signal.SIGUSR1, self._usr1)
        if self._env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = self._env
        logging.getLogger("ray.tune.tune").removeFilter(self._filter)
