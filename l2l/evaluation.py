"""Running an optimizer, learned or hand-designed, on freshly drawn problems.

An *epoch* is one optimization of one fresh problem for ``num_steps`` steps: the problem is
re-initialised and the optimizer's own state reset (the original evaluation never reset Adam's).
Both kinds record the loss at t = 0 … num_steps, so their curves line up.
"""

import math
import time
from typing import BinaryIO, Callable, Sequence

import numpy as np
import sonnet as snt
import tensorflow as tf

from l2l import meta
from l2l import variables as variables_lib

BASELINES: dict[str, Callable[[float], snt.Optimizer]] = {
    "SGD": lambda lr: snt.optimizers.SGD(lr),
    "Adam": lambda lr: snt.optimizers.Adam(lr),
    "RMSProp": lambda lr: snt.optimizers.RMSProp(lr),
    "NAG": lambda lr: snt.optimizers.Momentum(lr, momentum=0.9, use_nesterov=True),
}
OPTIMIZERS = ("L2L",) + tuple(BASELINES)


def check_unrolls(num_steps: int, unroll_length: int) -> None:
  """A run of ``num_steps`` steps is made of whole unrolls of ``unroll_length``: ValueError if
  not (the CLIs report it as their flags)."""
  if num_steps % unroll_length:
    raise ValueError(f"--num_steps must be a multiple of --unroll_length (got {num_steps} and "
                     f"{unroll_length}).")


def learned_epoch_runner(optimizer: meta.MetaOptimizer, make_loss: Callable[[], tf.Tensor],
                         num_steps: int, unroll_length: int, net_assignments=None,
                         jit_compile: bool = True) -> Callable[[], np.ndarray]:
  """``run()`` optimizes one fresh problem with the learned optimizer; returns losses [num_steps+1].

  ``jit_compile`` compiles the unroll with XLA.
  """
  check_unrolls(num_steps, unroll_length)
  ops = optimizer.meta_loss(make_loss, unroll_length, net_assignments=net_assignments)

  @tf.function(jit_compile=jit_compile)
  def unroll():
    ops.loss()
    ops.update()
    return ops.fx_history.read_value()

  def run() -> np.ndarray:
    ops.reset()
    histories = [unroll().numpy() for _ in range(num_steps // unroll_length)]
    return np.concatenate([histories[0]] + [h[1:] for h in histories[1:]])

  return run


def _baseline_parts(name: str, learning_rate: float, make_loss: Callable[[], tf.Tensor]):
  """``(step, loss, reset, weights)`` of a ``BASELINES`` optimizer on ``make_loss``'s variables.

  ``step()`` takes one step and returns the loss before it; ``loss()`` is the current loss;
  ``reset()`` draws a fresh problem and zeroes the optimizer's state. Neither is compiled here.
  """
  if name not in BASELINES:
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}.")
  record = variables_lib.record_variables(make_loss)
  weights = record.trainable
  optimizer = snt.allow_empty_variables(BASELINES[name](learning_rate))

  def loss() -> tf.Tensor:
    return tf.cast(variables_lib.loss_with_custom_variables(make_loss, record, weights), tf.float32)

  def step() -> tf.Tensor:
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(weights)  # Recorded variables are non-trainable; watch them explicitly.
      value = loss()
    optimizer.apply(tape.gradient(value, weights), weights)
    return value

  def reset() -> None:
    variables_lib.reinitialize(make_loss, record)
    for v in optimizer.variables:
      v.assign(tf.zeros_like(v))

  return step, loss, reset, weights


def baseline_epoch_runner(name: str, learning_rate: float, make_loss: Callable[[], tf.Tensor],
                          num_steps: int, jit_compile: bool = True) -> Callable[[], np.ndarray]:
  """``run()`` optimizes one fresh problem with a ``snt.optimizers`` baseline (XLA if jit_compile)."""
  step, loss, reset, _ = _baseline_parts(name, learning_rate, make_loss)

  @tf.function(jit_compile=jit_compile)
  def optimize():
    losses = tf.TensorArray(tf.float32, size=num_steps + 1)
    for t in tf.range(num_steps):
      losses = losses.write(t, step())
    return losses.write(num_steps, loss()).stack()

  def run() -> np.ndarray:
    reset()
    return optimize().numpy()

  return run


def run_epochs(run: Callable[[], np.ndarray], num_epochs: int, seed: int | None = None) -> dict:
  """Runs ``num_epochs`` fresh problems (drawn from ``seed``) and summarises their losses."""
  if seed is not None:
    tf.random.set_seed(seed)
  curves, times = [], []
  for _ in range(num_epochs):
    start = time.perf_counter()
    curves.append(run())
    times.append(time.perf_counter() - start)
  curves = np.stack(curves)
  final = curves[:, -1]
  mean_final = float(final.mean())
  return {
      "mean_final_loss": mean_final,
      "log10_mean_final_loss": math.log10(mean_final) if mean_final > 0 else float("-inf"),
      "final_losses": final.tolist(),
      "mean_loss_curve": curves.mean(axis=0).tolist(),
      # The first epoch includes tracing; the rest is the steady state.
      "seconds_per_epoch": float(np.mean(times[1:] if len(times) > 1 else times)),
      "num_epochs": num_epochs,
  }


def plot_curves(curves: dict[str, Sequence[float]], path: str | BinaryIO, title: str) -> None:
  """Draws mean loss curves (log scale) against step into a PNG file (a path or a binary stream).

  Curves whose name starts with "L2L" (learned optimizers) are solid, the others dashed.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for name, curve in curves.items():
    ax.semilogy(curve, label=name, linestyle="-" if name.startswith("L2L") else "--")
  ax.set_xlabel("step")
  ax.set_ylabel("mean loss")
  ax.set_title(title)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100, format="png")
  plt.close(fig)


def learned_stepper(optimizer: meta.MetaOptimizer, make_loss, net_assignments=None):
  """``(step, reset, x)``: one learned-optimizer step per ``step()`` call (returns the loss before
  it), ``reset()`` draws a fresh problem, ``x`` are the optimizee's current values."""
  ops = optimizer.meta_loss(make_loss, 1, net_assignments=net_assignments)

  @tf.function
  def step():
    ops.loss()
    ops.update()
    return ops.fx_history[0]

  return step, ops.reset, ops.x


def baseline_stepper(name: str, learning_rate: float, make_loss):
  """As ``learned_stepper``, for a ``BASELINES`` optimizer (its state zeroed by ``reset()``)."""
  step, _, reset, weights = _baseline_parts(name, learning_rate, make_loss)
  return tf.function(step), reset, weights


MOVING_RELATIVE, MOVING_ABSOLUTE = 1e-4, 1e-7


def diagnose(name: str, make_loss: Callable[[], tf.Tensor], num_steps: int, num_epochs: int,
             learning_rate: float = 0.001, optimizer: meta.MetaOptimizer | None = None,
             net_assignments=None) -> dict:
  """Step-by-step statistics of one optimizer on ``num_epochs`` fresh problems.

  For each step t (averaged over problems): the loss before the step (and after the last one), the
  mean absolute update over all coordinates, and the fraction of coordinates that moved, i.e.
  ``|Δx| > MOVING_ABSOLUTE + MOVING_RELATIVE·|x|``. A learned optimizer "stuck at the initial loss"
  shows near-zero updates or few moving coordinates here. Runs one step per call: slow, for
  debugging, not for benchmarks. Seed the problem first (``problems.seed_problem``) to compare
  optimizers on the same problems.

  Args:
    name: "L2L" (then ``optimizer`` is the MetaOptimizer) or a key of ``BASELINES``.
  """
  if name == "L2L":
    step, reset, x = learned_stepper(optimizer, make_loss, net_assignments)
  elif name in BASELINES:
    step, reset, x = baseline_stepper(name, learning_rate, make_loss)
  else:
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}.")
  loss = np.zeros([num_epochs, num_steps + 1])
  update = np.zeros([num_epochs, num_steps])
  moving = np.zeros([num_epochs, num_steps])
  for epoch in range(num_epochs):
    reset()
    before = np.concatenate([v.numpy().ravel() for v in x])
    for t in range(num_steps):
      loss[epoch, t] = float(step())
      after = np.concatenate([v.numpy().ravel() for v in x])
      delta = np.abs(after - before)
      update[epoch, t] = delta.mean()
      moving[epoch, t] = np.mean(delta > MOVING_ABSOLUTE + MOVING_RELATIVE * np.abs(before))
      before = after
    loss[epoch, num_steps] = float(step())  # The loss after the last step (one step more).
  return {"optimizer": name, "loss": loss.mean(0).tolist(),
          "mean_abs_update": update.mean(0).tolist(), "fraction_moving": moving.mean(0).tolist(),
          "num_coordinates": int(before.size)}
