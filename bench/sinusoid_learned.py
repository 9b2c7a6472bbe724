"""The learned optimizer as the inner loop on sine waves, from a Reptile-learned initialisation.

1. The demo's Reptile (``sinusoid_training.train_sinusoid``, 30 000 iterations, seed 0) learns the
   initialisation of the 1-64-64-1 tanh MLP.
2. A MetaOptimizer (``PRESET``) is meta-trained to adapt that initialisation: every epoch draws
   ``TASKS`` fresh tasks (``sinusoid.adaptation_problem``: one MLP copy per task, 10 points each) and
   optimizes them for ``STEPS`` steps in unrolls of ``UNROLL``, Adam ``META_LR`` on the net.
3. On the 200 held-out tasks of ``evaluate.py --problem=sinusoid`` (seed 1), k = 0, 1, 8, 32 steps of
   the learned optimizer, of SGD 0.02 (the demo's adaptation) and of Adam (learning rate tuned on
   200 validation tasks, seed 2, by the MSE after 32 steps) from that initialisation: mean and median
   MSE on the 50 points.

Run: ``.venv/bin/python bench/sinusoid_learned.py`` (writes bench/results/sinusoid_learned.json).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import print_table, write_results  # noqa: E402
from l2l import evaluation, meta  # noqa: E402
from problems import sinusoid_training  # noqa: E402
from problems import sinusoid  # noqa: E402

PRESET, TASKS, STEPS, UNROLL, META_LR, EPOCHS = "paper", 16, 32, 8, 0.003, 400
ADAM_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
ADAPT_STEPS = (0, 1, 8, 32)


def _fixed_tasks(num_tasks: int, seed: int) -> tuple[dict, np.ndarray]:
  """``held_out_tasks`` as ``adaptation_problem`` takes them, and the values on all 50 points."""
  tasks = sinusoid_training.held_out_tasks(num_tasks, seed)
  return {k: tasks[k] for k in ("amplitude", "phase", "index")}, tasks["y_all"]


def _mse_curve(stepper, y_all: np.ndarray) -> np.ndarray:
  """MSE on the 50 points per task [tasks] after each k of ADAPT_STEPS."""
  step, reset, x = stepper
  reset()
  x_all = tf.tile(tf.constant(sinusoid.X_ALL)[None], [len(y_all), 1, 1])
  out = {}
  for t in range(max(ADAPT_STEPS) + 1):
    if t in ADAPT_STEPS:
      prediction = sinusoid.forward(sinusoid.pack([tf.convert_to_tensor(v) for v in x]),
                                    x_all).numpy()
      out[t] = np.mean(np.square(prediction - y_all), axis=(1, 2))
    if t < max(ADAPT_STEPS):
      step()
  return out


def main() -> None:
  start = time.perf_counter()
  params = sinusoid_training.train_sinusoid("reptile", 30000, 1, 5, 0.02, 0.1, seed=0,
                                         logging_period=30000).params
  reptile_s = time.perf_counter() - start

  tf.random.set_seed(0)
  optimizer = meta.MetaOptimizer.from_preset(PRESET)
  ops = optimizer.meta_minimize(sinusoid.adaptation_problem(params, TASKS), UNROLL, META_LR)
  train = tf.function(lambda: (ops.step(), ops.update())[0], jit_compile=True)
  start = time.perf_counter()
  finals = []
  for epoch in range(EPOCHS):
    ops.reset()
    for _ in range(STEPS // UNROLL):
      train()
    finals.append(float(ops.fx) / TASKS)
    if (epoch + 1) % 50 == 0:
      print(f"epoch {epoch + 1}: mean 10-point MSE after {STEPS} steps "
            f"{np.mean(finals[-50:]):.4f}")
  meta_train_s = time.perf_counter() - start

  test, y_test = _fixed_tasks(200, 1)
  validation, y_validation = _fixed_tasks(200, 2)
  adam_scores = {lr: _mse_curve(evaluation.baseline_stepper(
      "Adam", lr, sinusoid.adaptation_problem(params, 200, validation)), y_validation)[32].mean()
                 for lr in ADAM_GRID}
  adam_lr = min(adam_scores, key=adam_scores.get)
  problem = sinusoid.adaptation_problem(params, 200, test)
  curves = {"L2L (learned)": _mse_curve(evaluation.learned_stepper(optimizer, problem), y_test),
            "SGD 0.02": _mse_curve(evaluation.baseline_stepper("SGD", 0.02, problem), y_test),
            f"Adam {adam_lr:g} (tuned)": _mse_curve(
                evaluation.baseline_stepper("Adam", adam_lr, problem), y_test)}
  rows = [{"optimizer": name, **{f"mse{k}_mean": float(c[k].mean()) for k in ADAPT_STEPS},
           **{f"mse{k}_median": float(np.median(c[k])) for k in ADAPT_STEPS}}
          for name, c in curves.items()]
  print_table(rows, ["optimizer"] + [f"mse{k}_mean" for k in ADAPT_STEPS]
              + [f"mse{k}_median" for k in ADAPT_STEPS])
  print("wrote", write_results(
      "sinusoid_learned", rows, reptile_seconds=reptile_s, meta_train_seconds=meta_train_s,
      adam_grid={str(k): float(v) for k, v in adam_scores.items()},
      setting=f"preset {PRESET}, {TASKS} tasks per epoch, {STEPS} steps in unrolls of {UNROLL}, "
              f"meta lr {META_LR}, {EPOCHS} epochs; 200 held-out tasks (seed 1)"))


if __name__ == "__main__":
  main()
