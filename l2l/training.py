"""Meta-training a MetaOptimizer on a named problem, keeping the best on fresh validation problems.

One *epoch* optimizes one freshly drawn problem for ``num_steps`` steps in ``num_steps /
unroll_length`` truncated unrolls; after each unroll the nets take one Adam step on the meta-loss
and the unroll's end is carried over (truncated BPTT). Every ``evaluation_period`` epochs the
optimizer is evaluated (no training) on ``evaluation_epochs`` fresh problems, and saved when its
mean final loss is the best so far, as the original code does.
"""

import dataclasses
import math
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

import problems
from l2l import evaluation
from l2l import meta


@dataclasses.dataclass
class TrainResult:
  optimizer: meta.MetaOptimizer
  best_log10_loss: float  # log10 of the best validation mean final loss.
  seconds_per_epoch: float
  history: list[dict]  # One entry per logged epoch.


def meta_train(problem: str, num_epochs: int, num_steps: int = 100, unroll_length: int = 20,
               learning_rate: float = 0.001, second_derivatives: bool = False,
               evaluation_period: int = 100, evaluation_epochs: int = 20,
               logging_period: int = 10, save_path: str | None = None, seed: int = 0,
               preset: str | None = None, jit_compile: bool = True) -> TrainResult:
  """Meta-trains on ``problem`` (a name of ``problems.get_config``); see the module docstring.

  ``jit_compile`` compiles each unroll with XLA (``bench/meta_step.py``: markedly faster on CPU).
  """
  if num_steps % unroll_length:
    raise ValueError(f"num_steps ({num_steps}) must be a multiple of unroll_length "
                     f"({unroll_length}).")
  tf.random.set_seed(seed)
  config = problems.get_config(problem, "train")
  optimizer = meta.MetaOptimizer.from_preset(preset or config.preset)
  train_ops = optimizer.meta_minimize(config.make_loss, unroll_length, learning_rate,
                                      net_assignments=config.net_assignments,
                                      second_derivatives=second_derivatives)
  validate = evaluation.learned_epoch_runner(optimizer, config.make_loss, num_steps,
                                             unroll_length, config.net_assignments, jit_compile)

  @tf.function(jit_compile=jit_compile)
  def train_unroll():
    loss = train_ops.step()
    train_ops.update()
    return loss

  writer = tf.summary.create_file_writer(os.path.join(save_path, "logs")) if save_path else None
  best, history, epoch_times = math.inf, [], []
  for epoch in range(num_epochs):
    start = time.perf_counter()
    train_ops.reset()
    meta_losses = [float(train_unroll()) for _ in range(num_steps // unroll_length)]
    epoch_times.append(time.perf_counter() - start)
    final = float(train_ops.fx)
    if not np.isfinite(meta_losses).all():
      raise FloatingPointError(
          f"The meta-loss became {meta_losses} in epoch {epoch + 1}: meta-training diverged. "
          "Lower --learning_rate.")
    if writer:
      with writer.as_default(step=epoch):
        tf.summary.scalar("meta_loss", np.mean(meta_losses))
        tf.summary.scalar("log10_final_loss", math.log10(max(final, 1e-30)))
    if (epoch + 1) % logging_period == 0:
      entry = {"epoch": epoch + 1, "meta_loss": float(np.mean(meta_losses)),
               "log10_final_loss": math.log10(max(final, 1e-30)),
               "seconds_per_epoch": float(np.mean(epoch_times[-logging_period:]))}
      history.append(entry)
      logging.info("epoch %d  meta-loss %.4g  log10 final loss %.3f  %.3f s/epoch",
                   entry["epoch"], entry["meta_loss"], entry["log10_final_loss"],
                   entry["seconds_per_epoch"])
    if (epoch + 1) % evaluation_period == 0:
      result = evaluation.run_epochs(validate, evaluation_epochs)
      score = result["mean_final_loss"]
      logging.info("epoch %d  validation log10 mean final loss %.3f%s", epoch + 1,
                   result["log10_mean_final_loss"], "  (best, saved)" if score < best else "")
      if writer:
        with writer.as_default(step=epoch):
          tf.summary.scalar("validation_log10_mean_final_loss", result["log10_mean_final_loss"])
      if score < best:
        best = score
        if save_path:
          optimizer.save(save_path)
  return TrainResult(optimizer, math.log10(best) if best < math.inf else math.nan,
                     float(np.mean(epoch_times[1:] if len(epoch_times) > 1 else epoch_times)),
                     history)
