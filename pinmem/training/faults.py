"""Faults during training (docs/reliability.md): stop signals, bad samples, a diverged run.

* :class:`StopRequest` turns SIGTERM, SIGUSR1 (what SLURM sends before it ends a job) and a first Ctrl-C (SIGINT)
  into a request that the trainer honours once the current iteration is done: it writes ``last.pt``, logs where
  it stopped and raises :class:`TrainingInterrupted`, which ``pinmem train`` turns into exit status
  :data:`EXIT_PREEMPTED`. A second Ctrl-C stops at once (``KeyboardInterrupt``, exit status 130).
* :class:`BadSampleError`: a training sample cannot be read and ``data.on_bad_sample`` is ``stop``;
  :class:`SkipCounter` counts and logs (once per file) the samples replaced under ``skip``.
* :class:`TrainingDiverged`: a loss term or the method's own state (Pin the Memory's slots) holds NaN or
  infinity; :func:`diverged` names them (the state in the method's words).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import Tensor

from pinmem.engine.distributed import DistContext
from pinmem.errors import CorruptFileError, PinmemError

log = logging.getLogger("pinmem")

#: exit status of ``pinmem train`` stopped by a signal after writing ``last.pt`` (sysexits' EX_TEMPFAIL:
#: a temporary failure, run it again — with ``--resume``)
EXIT_PREEMPTED = 75
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, name))


class TrainingInterrupted(PinmemError):
    """Training stopped on a signal (after writing ``last.pt`` when it had started); ``pinmem train`` exits with
    :attr:`exit_code`."""

    exit_code = EXIT_PREEMPTED


class TrainingDiverged(PinmemError):
    """A loss term or the method's own state (a memory slot) became NaN or infinite."""


class BadSampleError(CorruptFileError):
    """A training sample cannot be read and ``data.on_bad_sample`` is ``stop`` (the message names the file)."""


class StopRequest:
    """While entered in the main thread, SIGTERM, SIGUSR1 and SIGINT record a request (:attr:`signal_name`) instead
    of ending the process; a SIGINT after a request raises ``KeyboardInterrupt``. Leaving restores the previous
    handlers. Entering in another thread does nothing (Python runs signal handlers in the main thread only)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.previous: dict[int, Any] = {}
        self.pid = os.getpid()

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self.pid = os.getpid()
            for number in STOP_SIGNALS:
                self.previous[number] = signal.signal(number, self.handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self.previous.clear()

    def handle(self, number: int, frame: FrameType | None) -> None:
        if os.getpid() != self.pid:  # a loader worker, forked before its init function set the signals aside
            return
        if number == signal.SIGINT and self.requested:
            raise KeyboardInterrupt
        if self.requested:
            return
        self.signal_name = signal.Signals(number).name
        again = " (Ctrl-C again stops at once, saving nothing)" if number == signal.SIGINT else ""
        log.warning("%s received: finishing the current iteration, then writing last.pt and stopping%s",
                    self.signal_name, again)


class SkipCounter:
    """The samples replaced under ``data.on_bad_sample=skip``: ``base`` from the checkpoint plus those this process
    met; each bad file is logged once."""

    def __init__(self, base: int = 0) -> None:
        self.base, self.new = int(base), 0
        self.logged: set[str] = set()

    def add(self, batch: Mapping[str, Mapping[str, Any]]) -> None:
        for part in batch.values():
            for error in part.get("skipped", ()):
                self.new += 1
                if error not in self.logged:
                    self.logged.add(error)
                    log.warning("bad training sample skipped (data.on_bad_sample=skip), another drawn: %s", error)

    def total(self, context: DistContext) -> int:
        """Samples replaced since the run began, resumes included, over all ranks (every rank calls it)."""
        if not context.distributed:
            return self.base + self.new
        return self.base + int(context.sum_(torch.full((1,), float(self.new), device=context.device)).item())


def interrupted(signal_name: str | None, iteration: int, total: int, last: Path) -> TrainingInterrupted:
    """Logs where a stopped run stands and returns the error that ends it."""
    message = (f"training stopped by {signal_name or 'a stop signal on another rank'} after iteration {iteration} "
               f"of {total}; {last} written; continue with `pinmem train --resume {last}`")
    log.warning("%s", message)
    return TrainingInterrupted(message)


def diverged(losses: Mapping[str, float], state: str | None, when: str, checkpoints: Path) -> TrainingDiverged:
    """The error naming the non-finite loss terms (with their values) and the method's non-finite state (in the
    method's words, :meth:`~pinmem.methods.base.Method.describe_state`: Pin the Memory's slots with their
    classes)."""
    parts = []
    if losses:
        parts.append(f"loss term(s) {', '.join(losses)} became non-finite {when} ({dict(losses)})")
    if state:
        parts.append(f"{state} became non-finite {when}")
    return TrainingDiverged(f"{'; '.join(parts)} on some rank; training stopped. The last checkpoint in "
                            f"{checkpoints} is untouched; lower train.lr or use train.amp=none to continue.")


def step_flags(losses: Mapping[str, Tensor], state: Tensor | None, stop: bool, device: torch.device) -> Tensor:
    """One float vector on ``device``, built without a host-device sync: 1 for each non-finite loss term, each
    flagged unit of the method's state (``state``, :meth:`~pinmem.methods.base.Method.nonfinite_state`), and a
    last entry for a stop request; summed over ranks and read once, it is the training step's only
    synchronisation."""
    parts = [torch.stack([~torch.isfinite(value).all() for value in losses.values()]).to(device)] if losses else []
    if state is not None:
        parts.append(state)
    parts.append(torch.full((1,), stop, dtype=torch.bool, device=device))
    return torch.cat([part.float() for part in parts])


def bad_sample_error(errors: Sequence[str], iteration: int, last: Path) -> BadSampleError:
    """What stops a run on a bad sample: the files and what is wrong with them, where the run stands, what to do."""
    what = "; ".join(errors) if errors else "another rank met a bad sample (its log names the file)"
    return BadSampleError(
        f"{what}. Training stopped before iteration {iteration + 1}; {last} holds the {iteration} iterations done. "
        "Replace the file (`pinmem data check` lists every bad one) or add data.on_bad_sample=skip, then continue "
        f"with `pinmem train --resume {last}`")
