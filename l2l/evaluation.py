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


def learned_epoch_runner(optimizer: meta.MetaOptimizer, make_loss: Callable[[], tf.Tensor],
                         num_steps: int, unroll_length: int, net_assignments=None,
                         jit_compile: bool = True) -> Callable[[], np.ndarray]:
  """``run()`` optimizes one fresh problem with the learned optimizer; returns losses [num_steps+1].

  ``jit_compile`` compiles the unroll with XLA.
  """
  if num_steps % unroll_length:
    raise ValueError(f"num_steps ({num_steps}) must be a multiple of unroll_length "
                     f"({unroll_length}).")
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


def baseline_epoch_runner(name: str, learning_rate: float, make_loss: Callable[[], tf.Tensor],
                          num_steps: int, jit_compile: bool = True) -> Callable[[], np.ndarray]:
  """``run()`` optimizes one fresh problem with a ``snt.optimizers`` baseline (XLA if jit_compile)."""
  if name not in BASELINES:
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}.")
  record = variables_lib.record_variables(make_loss)
  weights = record.trainable
  optimizer = snt.allow_empty_variables(BASELINES[name](learning_rate))
  loss_fn = lambda: variables_lib.loss_with_custom_variables(make_loss, record, weights)

  @tf.function(jit_compile=jit_compile)
  def optimize():
    losses = tf.TensorArray(tf.float32, size=num_steps + 1)
    for t in tf.range(num_steps):
      with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(weights)  # Recorded variables are non-trainable; watch them explicitly.
        loss = loss_fn()
      optimizer.apply(tape.gradient(loss, weights), weights)
      losses = losses.write(t, tf.cast(loss, tf.float32))
    return losses.write(num_steps, tf.cast(loss_fn(), tf.float32)).stack()

  def run() -> np.ndarray:
    variables_lib.reinitialize(make_loss, record)
    for v in optimizer.variables:
      v.assign(tf.zeros_like(v))
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
