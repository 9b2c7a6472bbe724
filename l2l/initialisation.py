"""Meta-learning an initialisation (Reptile, first-order MAML, MAML) on sine-wave regression.

The training loop is built from ``l2l.reptile_step`` / ``fomaml_step`` / ``maml_step`` and
``l2l.gradient_descent_update``: every iteration draws ``meta_batch_size`` tasks with 10 of their 50
points, adapts with ``inner_steps`` full-batch SGD steps on those points, and moves the
initialisation along the meta-gradient with an outer step size annealed linearly to 0. Reptile's
library gradient is the mean trajectory gradient divided by the inner step size α, so its outer step
is scaled by ``α² (inner_steps + 1)``, which makes it ``θ ← θ + ε(φ − θ) − ε·α·g_K`` per task: the
Reptile demo's interpolation plus one gradient.

A trained initialisation is saved as a ``tf.train.Checkpoint`` (``params``) plus ``config.json``.
"""

import json
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

from l2l import meta_learning
from l2l.updates import gradient_descent_update
from problems import sinusoid

ALGORITHMS = ("reptile", "fomaml", "maml")


def sinusoid_meta_gradient(algorithm: str, inner_steps: int, inner_lr: float):
  """A compiled ``(batch, params) -> (cost, grads)`` for one outer iteration."""
  if algorithm == "reptile":
    step = lambda b, p: meta_learning.reptile_step(b, sinusoid.mse_cost, p, inner_steps, inner_lr,
                                                   batched=False)
  elif algorithm in ALGORITHMS:
    step_fn = getattr(meta_learning, f"{algorithm}_step")
    step = lambda b, p: step_fn(b, sinusoid.mse_cost, None, p, inner_steps, inner_lr,
                                batched=False)[:2]
  else:
    raise ValueError(f"Unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}.")
  return tf.function(step)


def train_sinusoid(algorithm: str, num_iterations: int, meta_batch_size: int, inner_steps: int,
                   inner_lr: float, outer_lr: float, seed: int, logging_period: int = 1000):
  """Meta-trains the sine MLP's initialisation; returns ``(params, iterations_per_second)``."""
  rng = np.random.RandomState(seed)
  params = sinusoid.init_params(seed)
  meta_gradient = sinusoid_meta_gradient(algorithm, inner_steps, inner_lr)
  outer_scale = inner_lr ** 2 * (inner_steps + 1) if algorithm == "reptile" else 1.0
  start, costs = time.perf_counter(), []
  for iteration in range(num_iterations):
    amplitude, phase = sinusoid.sample_tasks(rng, meta_batch_size)
    x = np.stack([sinusoid.X_ALL[rng.choice(len(sinusoid.X_ALL), sinusoid.NUM_TRAIN_POINTS,
                                            replace=False)] for _ in range(meta_batch_size)])
    batch = {"x": x, "y": sinusoid.task_values(amplitude, phase, x)}
    cost, grads = meta_gradient(batch, params)
    step_size = outer_lr * (1 - iteration / num_iterations) * outer_scale
    params = gradient_descent_update(params, grads, step_size)
    costs.append(float(cost))
    if not np.isfinite(costs[-1]):
      raise FloatingPointError(
          f"The meta cost became {costs[-1]} at iteration {iteration + 1}: meta-training diverged. "
          "Lower --outer_learning_rate or --inner_learning_rate.")
    if (iteration + 1) % logging_period == 0:
      logging.info("iteration %d  mean meta cost %.4f  %.0f it/s", iteration + 1,
                   np.mean(costs[-logging_period:]),
                   (iteration + 1) / (time.perf_counter() - start))
  return params, num_iterations / (time.perf_counter() - start)


def save(params, save_path: str, config: dict) -> None:
  """Writes the parameters as a ``tf.train.Checkpoint`` and the config as JSON."""
  os.makedirs(save_path, exist_ok=True)
  checkpoint = tf.train.Checkpoint(params=tf.nest.map_structure(tf.Variable, params))
  checkpoint.write(os.path.join(save_path, "params"))
  with open(os.path.join(save_path, "config.json"), "w") as f:
    json.dump(config, f, indent=2)


def load_params(path: str | None, seed: int = 0) -> sinusoid.Params:
  """The parameters saved by train.py at ``path``; the untrained initialisation without one."""
  params = tf.nest.map_structure(tf.Variable, sinusoid.init_params(seed))
  if path is None:
    return tf.nest.map_structure(tf.convert_to_tensor, params)
  config_path = os.path.join(path, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(
        f"No trained model at {path!r}: expected {config_path} and a checkpoint 'params' written "
        "by train.py --save_path.")
  with open(config_path) as f:
    config = json.load(f)
  if config.get("problem") != "sinusoid":
    raise ValueError(f"{path!r} holds a {config.get('problem')!r} model, not a sinusoid one.")
  tf.train.Checkpoint(params=params).read(os.path.join(path, "params")).assert_consumed()
  return tf.nest.map_structure(tf.convert_to_tensor, params)


def evaluate_sinusoid(params: sinusoid.Params, num_tasks: int, adapt_steps: list[int],
                      adapt_lr: float, seed: int) -> dict:
  """Mean / median MSE over the 50 points after k SGD steps on 10 points, per k."""
  rng = np.random.RandomState(seed)
  amplitude, phase = sinusoid.sample_tasks(rng, num_tasks)
  x_train = np.stack([sinusoid.X_ALL[rng.choice(len(sinusoid.X_ALL), sinusoid.NUM_TRAIN_POINTS,
                                                replace=False)] for _ in range(num_tasks)])
  y_train = sinusoid.task_values(amplitude, phase, x_train)
  y_all = sinusoid.task_values(amplitude, phase, sinusoid.X_ALL)
  max_steps = max(adapt_steps)

  @tf.function
  def adapt_curve(x, y, y_all):
    """MSE on all points after 0..max_steps SGD steps, for one task."""
    p, curve = params, []
    for step in range(max_steps + 1):
      curve.append(tf.reduce_mean(tf.square(sinusoid.forward(p, sinusoid.X_ALL) - y_all)))
      if step < max_steps:
        with tf.GradientTape() as tape:
          tape.watch(p)
          cost = sinusoid.mse_cost({"x": x, "y": y}, p)
        p = gradient_descent_update(p, tape.gradient(cost, p), adapt_lr)
    return tf.stack(curve)

  curves = np.stack([adapt_curve(x_train[i], y_train[i], y_all[i]) for i in range(num_tasks)])
  return {"mse": {str(k): {"mean": float(curves[:, k].mean()),
                           "median": float(np.median(curves[:, k]))} for k in adapt_steps},
          "num_tasks": num_tasks, "adapt_learning_rate": adapt_lr, "seed": seed}
