"""Speed of reptile_step / fomaml_step / maml_step against hand-written GradientTape loops.

Setting: the Reptile demo's sine waves, 1-64-64-1 tanh MLP, 5 tasks of 10 points, 5 inner SGD steps of
0.02, unbatched (one inner loop per task). Both sides run inside one ``tf.function`` and compute the
same numbers (checked before timing), once as a plain graph and once with ``jit_compile=True``.
Target: library ≤ 1.3× the hand-written loop. The library also zeroes non-finite gradients (as
ivy does), two extra ops per gradient leaf that the hand-written loop does not have; XLA fuses them.

Run: ``.venv/bin/python bench/meta_steps.py`` (writes bench/results/meta_steps.json).
"""

import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import l2l  # noqa: E402
from bench.common import print_table, time_pair, write_results  # noqa: E402
from problems import sinusoid  # noqa: E402

TASKS, POINTS, STEPS, LR = 5, 10, 5, 0.02


def _leaves(params):
  return tf.nest.flatten(params)


def _pack(params, leaves):
  return tf.nest.pack_sequence_as(params, leaves)


def _task_grad(params, leaves, x, y):
  with tf.GradientTape() as tape:
    tape.watch(leaves)
    cost = tf.reduce_mean(tf.square(sinusoid.forward(_pack(params, leaves), x) - y))
  return cost, tape.gradient(cost, leaves)


def hand_reptile(batch, params):
  """Mean of the K+1 trajectory gradients / lr, averaged over tasks (what reptile_step computes)."""
  total_cost, total = 0.0, [tf.zeros_like(p) for p in _leaves(params)]
  for i in range(TASKS):
    x, y = batch["x"][i:i + 1], batch["y"][i:i + 1]
    leaves, costs, grads = _leaves(params), [], []
    for _ in range(STEPS):
      cost, g = _task_grad(params, leaves, x, y)
      costs.append(cost), grads.append(g)
      leaves = [p - LR * gi for p, gi in zip(leaves, g)]
    cost, g = _task_grad(params, leaves, x, y)
    costs.append(cost), grads.append(g)
    total_cost += tf.add_n(costs) / len(costs)
    total = [t + tf.add_n(list(gs)) / len(gs) for t, gs in zip(total, zip(*grads))]
  return total_cost / TASKS, _pack(params, [t / TASKS / LR for t in total])


def hand_fomaml(batch, params):
  total_cost, total = 0.0, [tf.zeros_like(p) for p in _leaves(params)]
  for i in range(TASKS):
    x, y = batch["x"][i:i + 1], batch["y"][i:i + 1]
    leaves = _leaves(params)
    for _ in range(STEPS):
      _, g = _task_grad(params, leaves, x, y)
      leaves = [p - LR * gi for p, gi in zip(leaves, g)]
    cost, g = _task_grad(params, leaves, x, y)
    total_cost += cost
    total = [t + gi for t, gi in zip(total, g)]
  return total_cost / TASKS, _pack(params, [t / TASKS for t in total])


def hand_maml(batch, params):
  initial = _leaves(params)
  with tf.GradientTape() as outer:
    outer.watch(initial)
    total_cost = 0.0
    for i in range(TASKS):
      x, y = batch["x"][i:i + 1], batch["y"][i:i + 1]
      leaves = initial
      for _ in range(STEPS):
        _, g = _task_grad(params, leaves, x, y)
        leaves = [p - LR * gi for p, gi in zip(leaves, g)]
      total_cost += tf.reduce_mean(tf.square(sinusoid.forward(_pack(params, leaves), x) - y))
    total_cost = total_cost / TASKS
  return total_cost, _pack(params, outer.gradient(total_cost, initial))


LIBRARY = {
    "reptile_step": lambda b, p: l2l.reptile_step(b, sinusoid.mse_cost, p, STEPS, LR, batched=False),
    "fomaml_step": lambda b, p: l2l.fomaml_step(b, sinusoid.mse_cost, None, p, STEPS, LR,
                                                batched=False),
    "maml_step": lambda b, p: l2l.maml_step(b, sinusoid.mse_cost, None, p, STEPS, LR,
                                            batched=False)[:2],
}
HAND = {"reptile_step": hand_reptile, "fomaml_step": hand_fomaml, "maml_step": hand_maml}


def main():
  rng = np.random.RandomState(0)
  amplitude, phase = sinusoid.sample_tasks(rng, TASKS)
  x = np.stack([sinusoid.X_ALL[rng.choice(50, POINTS, replace=False)] for _ in range(TASKS)])
  batch = {"x": tf.constant(x), "y": tf.constant(sinusoid.task_values(amplitude, phase, x))}
  params = sinusoid.init_params(0)
  rows = []
  for (name, library_fn), jit in itertools.product(LIBRARY.items(), (False, True)):
    library = tf.function(library_fn, jit_compile=jit)
    hand = tf.function(HAND[name], jit_compile=jit)
    (lc, lg), (hc, hg) = library(batch, params), hand(batch, params)
    np.testing.assert_allclose(lc, hc, rtol=1e-5)
    for a, b in zip(tf.nest.flatten(lg), tf.nest.flatten(hg)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    t_library, t_hand, ratio = time_pair(lambda: library(batch, params),
                                         lambda: hand(batch, params))
    rows.append({"step": name, "jit_compile": jit, "library_ms": 1e3 * t_library, "hand_written_ms": 1e3 * t_hand,
                 "ratio": ratio})
  print_table(rows, ["step", "jit_compile", "library_ms", "hand_written_ms", "ratio"])
  path = write_results("meta_steps", rows, target_ratio=1.3,
                       setting=f"sine MLP 1-64-64-1, {TASKS} tasks x {POINTS} points, "
                               f"{STEPS} inner steps, unbatched, inside tf.function")
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
