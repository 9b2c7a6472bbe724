"""Meta-training a MetaOptimizer on one problem: best-on-validation saving, resumable, guarded.

One *epoch* optimizes one freshly drawn problem for ``num_steps`` steps in ``num_steps /
unroll_length`` truncated unrolls; after each unroll the nets take one Adam step on the meta-loss
and the unroll's end is carried over (truncated BPTT). Every ``evaluation_period`` epochs and after
the last epoch the optimizer is evaluated (no training) on ``evaluation_epochs`` fresh problems, and
saved when its mean final loss is the best so far, as the original code does; when no validation
gives a finite score, the final optimizer is saved instead, with a warning. Progress lines (epoch,
meta-loss, last validation, ETA) come every ``logging_period`` epochs and at least every
``progress_seconds``.

Reliability:
- Every epoch's problem (and every validation's) is drawn from a seed derived from ``seed`` and the
  epoch, and the minibatch sampler (``ProblemConfig.sampler``) is checkpointed, so a run is
  reproducible and a resumed run continues exactly where the checkpoint was taken.
- With ``checkpoint_every``, a ``tf.train.CheckpointManager`` under ``save_path/checkpoints`` keeps
  the nets, the meta-optimizer's Adam slots, the carried optimizee and RNN state, the epoch, the
  sampler's state, the best validation score and its epoch and the skip counters (TF writes the
  checkpoint files, then atomically replaces the "checkpoint" index, so a crash never leaves a
  half-written latest).
- A meta-loss or meta-gradient that is NaN / Inf skips that update (``MetaStep.applied``), is counted
  and logged, and ends the epoch (its optimizee diverged); ``max_nonfinite`` of them in a row stop
  training with FloatingPointError. NaN weights are never saved.
"""

import dataclasses
import io
import math
import os
import time
from typing import Any, Callable

from absl import logging
import numpy as np
import tensorflow as tf

from l2l import checkpoint
from l2l import evaluation
from l2l import meta

CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class ProblemConfig:
  """A problem to meta-train on: how to build it, which nets optimize it, and how."""
  make_loss: Callable[[], tf.Tensor]
  preset: str  # A key of l2l.meta.PRESETS: the configuration of every net.
  net_keys: tuple[str, ...] | None = None  # Several nets of that preset; None: one.
  net_assignments: Any = None  # [(net key, [variable names])] when there are several nets.
  # Where make_loss draws its minibatches from (None: no data): seeded with the problem and
  # checkpointed, so that runs are reproducible and resume exactly.
  sampler: tf.random.Generator | None = None

  def seed(self, seed: int) -> None:
    """Seeds TF's global seed (fresh-problem draws) and the minibatch sampler."""
    tf.random.set_seed(seed)
    if self.sampler is not None:
      self.sampler.reset_from_seed(seed)


@dataclasses.dataclass
class TrainResult:
  optimizer: meta.MetaOptimizer
  best_log10_loss: float  # log10 of the best validation mean final loss (nan: none finite).
  saved_epoch: int  # The epoch of the optimizer saved to save_path.
  saved: str  # "best" (of the validations) or "final" (no validation gave a finite score).
  seconds_per_epoch: float
  history: list[dict]  # One entry per logged epoch.
  start_epoch: int  # > 0 when resumed from a checkpoint.
  skipped_updates: int  # Non-finite meta-steps skipped over the whole run.


def epoch_seed(seed: int, epoch: int, validation: bool = False) -> int:
  """The op-level random seed of one epoch's problem draw (or of its validation problems)."""
  return (seed * 1_000_003 + epoch) * 2 + int(validation)


def _log10(value: float) -> float:
  return math.log10(value) if value > 0 else float(value if math.isnan(value) else -math.inf)


def _curve_image(curve: list[float], title: str) -> tf.Tensor:
  """The validation learning curve as a PNG image tensor [1, H, W, 4] for TensorBoard."""
  buffer = io.BytesIO()
  evaluation.plot_curves({"L2L (validation)": curve}, buffer, title)
  return tf.image.decode_png(buffer.getvalue())[None]


def meta_train(config: ProblemConfig, num_epochs: int, num_steps: int = 100,
               unroll_length: int = 20, learning_rate: float = 0.001, second_derivatives: bool = False,
               evaluation_period: int = 100, evaluation_epochs: int = 20,
               logging_period: int = 10, save_path: str | None = None, seed: int = 0,
               preset: str | None = None, jit_compile: bool = True,
               clip_norm: float | None = None, checkpoint_every: int | None = None,
               resume: bool = False, max_nonfinite: int = 10,
               progress_seconds: float = 10.0) -> TrainResult:
  """Meta-trains on ``config``'s problem; see the module docstring.

  Args:
    config: the problem, its nets and its sampler.
    num_epochs, num_steps, unroll_length: epochs; optimizee steps per epoch and per unroll.
    learning_rate, clip_norm: Adam on the nets; optional clipping of the meta-gradient's global norm.
    second_derivatives: differentiate through the optimizee's gradients.
    evaluation_period, evaluation_epochs: validate every so many epochs and after the last one,
      on so many fresh problems.
    logging_period, progress_seconds: a progress line every so many epochs, and at least one
      every so many seconds.
    save_path: where the best optimizer, TensorBoard logs and checkpoints go.
    seed: seeds every problem draw and minibatch sampler.
    preset: net preset; default the problem's own.
    jit_compile: compile each unroll with XLA (``bench/meta_step.py``: markedly faster on CPU).
    checkpoint_every: epochs between resumable checkpoints (needs ``save_path``).
    resume: continue from the latest checkpoint under ``save_path``.
    max_nonfinite: consecutive non-finite meta-steps after which training stops.
  """
  evaluation.check_unrolls(num_steps, unroll_length)
  if (checkpoint_every or resume) and not save_path:
    raise ValueError("checkpoint_every and resume need a save_path to keep checkpoints in.")
  if max_nonfinite < 1:
    raise ValueError(f"max_nonfinite must be positive, got {max_nonfinite}.")
  config.seed(seed)
  optimizer = meta.MetaOptimizer.from_preset(preset or config.preset, config.net_keys)
  train_ops = optimizer.meta_minimize(config.make_loss, unroll_length, learning_rate,
                                      clip_norm=clip_norm, net_assignments=config.net_assignments,
                                      second_derivatives=second_derivatives)
  validate = evaluation.learned_epoch_runner(optimizer, config.make_loss, num_steps,
                                             unroll_length, config.net_assignments, jit_compile)

  @tf.function(jit_compile=jit_compile)
  def train_unroll():
    loss = train_ops.step()
    train_ops.update()
    return loss

  epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
  best_var = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best")
  best_epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
  skipped_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
  in_row_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_in_row")
  manager = None
  if checkpoint_every or resume:
    train_unroll.get_concrete_function()  # Creates the Adam slots, so a restore fills them all.
    state = dict(nets=optimizer.nets, meta_optimizer=train_ops.optimizer,
                 carried=train_ops.meta_loss.carried, epoch=epoch_var, best=best_var,
                 best_epoch=best_epoch_var, skipped=skipped_var, nonfinite_in_row=in_row_var)
    if config.sampler is not None:
      state["rng"] = config.sampler
    manager = checkpoint.resumable(os.path.join(save_path, CHECKPOINT_DIR), state, resume,
                                   f"preset {preset or config.preset!r}")
    if resume:
      logging.info("resumed from %s at epoch %d", manager.latest_checkpoint, int(epoch_var))

  writer = tf.summary.create_file_writer(os.path.join(save_path, "logs")) if save_path else None
  start_epoch = int(epoch_var)
  history, epoch_times = [], []
  progress = _Progress(start_epoch, num_epochs, progress_seconds)
  for epoch in range(start_epoch, num_epochs):
    start = time.perf_counter()
    tf.random.set_seed(epoch_seed(seed, epoch))
    train_ops.reset()
    meta_losses, grad_norms = [], []
    for _ in range(num_steps // unroll_length):
      meta_loss = float(train_unroll())
      if not bool(train_ops.applied):
        skipped_var.assign_add(1)
        in_row_var.assign_add(1)
        logging.warning("epoch %d: meta-loss %s, meta-gradient norm %s: update skipped (%d in a "
                        "row, %d in all); drawing a fresh problem", epoch + 1, meta_loss,
                        float(train_ops.grad_norm), int(in_row_var), int(skipped_var))
        if int(in_row_var) >= max_nonfinite:
          raise FloatingPointError(
              f"{int(in_row_var)} non-finite meta-steps in a row (epoch {epoch + 1}): "
              "meta-training diverged. Lower --learning_rate, set --clip_norm, or raise "
              "--max_nonfinite; the nets were not updated with NaN, and the last checkpoint "
              "and best optimizer on disk are intact.")
        break
      in_row_var.assign(0)
      meta_losses.append(meta_loss)
      grad_norms.append(float(train_ops.grad_norm))
    epoch_times.append(time.perf_counter() - start)
    entry = {"epoch": epoch + 1,
             "meta_loss": float(np.mean(meta_losses)) if meta_losses else math.nan,
             "meta_gradient_norm": float(np.mean(grad_norms)) if grad_norms else math.nan,
             "log10_final_loss": _log10(float(train_ops.fx)),
             "skipped_updates": int(skipped_var)}
    if writer and meta_losses:
      with writer.as_default(step=epoch):
        tf.summary.scalar("meta_loss", entry["meta_loss"])
        tf.summary.scalar("meta_gradient_norm", entry["meta_gradient_norm"])
        tf.summary.scalar("log10_final_loss", entry["log10_final_loss"])
    if (epoch + 1) % logging_period == 0:
      history.append({**entry,
                      "seconds_per_epoch": float(np.mean(epoch_times[-logging_period:]))})
    if (epoch + 1) % evaluation_period == 0 or epoch + 1 == num_epochs:
      result = evaluation.run_epochs(validate, evaluation_epochs,
                                     epoch_seed(seed, epoch, validation=True))
      score = result["mean_final_loss"]
      improved = score < float(best_var)
      progress.validated(epoch + 1, result["log10_mean_final_loss"], improved)
      if writer:
        with writer.as_default(step=epoch):
          tf.summary.scalar("validation_log10_mean_final_loss", result["log10_mean_final_loss"])
          tf.summary.image("validation_learning_curve", _curve_image(
              result["mean_loss_curve"], f"epoch {epoch + 1}"))
      if improved:
        best_var.assign(score)
        best_epoch_var.assign(epoch + 1)
        if save_path:
          optimizer.save(save_path)
    epoch_var.assign(epoch + 1)
    progress.epoch_done(entry, force=(epoch + 1) % logging_period == 0)
    if manager and checkpoint_every and (epoch + 1) % checkpoint_every == 0:
      manager.save(checkpoint_number=epoch + 1)
  if manager and checkpoint_every and int(epoch_var) % checkpoint_every:
    manager.save(checkpoint_number=int(epoch_var))  # The end of training, resumable too.
  saved = "best"
  if int(best_epoch_var) == 0:  # No finite validation score in the whole run.
    saved = "final"
    if save_path:
      optimizer.save(save_path)
    logging.warning("no validation gave a finite score: %s holds the final optimizer (epoch %d)",
                    save_path, int(epoch_var))
  best = float(best_var)
  return TrainResult(optimizer, math.log10(best) if best < math.inf else math.nan,
                     int(best_epoch_var) or int(epoch_var), saved,
                     float(np.mean(epoch_times[1:] if len(epoch_times) > 1 else epoch_times or [0])),
                     history, start_epoch, int(skipped_var))


class _Progress:
  """Progress lines: one per ``logging_period`` epochs and at least one every ``seconds``."""

  def __init__(self, start_epoch: int, num_epochs: int, seconds: float):
    self._start_epoch, self._num_epochs, self._seconds = start_epoch, num_epochs, seconds
    self._start = self._last_line = time.perf_counter()
    self._validation = ""

  def validated(self, epoch: int, log10_loss: float, improved: bool) -> None:
    self._validation = f"validation {log10_loss:.3f} (epoch {epoch}{', best' if improved else ''})"
    logging.info("epoch %d  %s", epoch, self._validation)

  def epoch_done(self, entry: dict, force: bool) -> None:
    now = time.perf_counter()
    epoch = entry["epoch"]
    if not (force or now - self._last_line >= self._seconds or epoch == self._num_epochs):
      return
    self._last_line = now
    rate = (now - self._start) / (epoch - self._start_epoch)
    logging.info("epoch %d/%d  meta-loss %.4g  meta-grad norm %.3g  log10 final loss %.3f  "
                 "%.3f s/epoch  skipped %d  %s  ETA %s", epoch, self._num_epochs,
                 entry["meta_loss"], entry["meta_gradient_norm"], entry["log10_final_loss"], rate,
                 entry["skipped_updates"], self._validation or "no validation yet",
                 _duration(rate * (self._num_epochs - epoch)))


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
