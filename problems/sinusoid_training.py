"""Meta-learning an initialisation (Reptile, first-order MAML, MAML) on sine-wave regression.

The whole training loop is one XLA program: every task of the run is drawn up front (with the
Reptile demo's RandomState in the demo's order, so a seed gives the demo's task sequence), and a
compiled ``tf.while_loop`` runs many outer iterations per call with no Python per iteration. Each
iteration is built from the library's pieces:

- ``variant="seed"`` (Reptile, the demo's algorithm): ``inner_steps`` SGD steps
  (``gradient_descent_update``) on minibatches of 10 points taken in a fresh random order of the 50,
  then ``θ ← θ + ε(φ − θ)`` (again ``gradient_descent_update``, on ``θ − φ``);
- ``variant="library"``: ``reptile_step`` / ``fomaml_step`` / ``maml_step`` with ``inner_steps``
  full-batch steps on 10 of the 50 points; FOMAML and MAML take their outer cost on 10 others.
  Reptile's library gradient is the mean trajectory gradient divided by the inner step size α, so
  its outer step is scaled by ``α² (inner_steps + 1)``, which makes it ``θ ← θ + ε(φ − θ) − ε·α·g_K``
  per task: the demo's interpolation plus one gradient.

The outer step size ε is annealed linearly to 0. With several tasks per iteration their updates are
averaged. A trained initialisation is saved as a ``tf.train.Checkpoint`` (``params``) plus
``config.json``; with ``save_path`` and ``checkpoint_every`` training also keeps resumable
checkpoints (parameters and iteration) under ``save_path/checkpoints``.
"""

import dataclasses
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

from l2l import checkpoint
from l2l import meta_learning
from l2l.updates import gradient_descent_update
from problems import sinusoid

ALGORITHMS = ("reptile", "fomaml", "maml")
VARIANTS = ("seed", "library")
CHECKPOINT_DIR = "checkpoints"
PARAMS_PREFIX = "params"
# Iterations per compiled call and progress line by default: the demo's own plotting period; a
# call costs ≈ 0.2 ms besides its iterations, under 1 % at this period.
LOGGING_PERIOD = 1000


@dataclasses.dataclass
class SinusoidResult:
  params: sinusoid.Params
  iterations_per_second: float  # The training loop alone, compilation excluded.
  compile_seconds: float
  start_iteration: int  # > 0 when resumed from a checkpoint.


def draw_tasks(seed: int, num_iterations: int, meta_batch_size: int) -> dict[str, np.ndarray]:
  """Every task of a run: ``amplitude``, ``phase`` [iterations, tasks] and ``order`` [.., .., 50].

  The RandomState is used as the Reptile demo uses it: first its plotting task and minibatch, then
  per task (phase, amplitude) and a permutation of the 50 points.
  """
  rng = np.random.RandomState(seed)
  sinusoid.sample_tasks(rng, 1)
  rng.choice(len(sinusoid.X_ALL), size=sinusoid.NUM_TRAIN_POINTS)
  shape = (num_iterations, meta_batch_size)
  amplitude, phase = np.empty(shape, np.float32), np.empty(shape, np.float32)
  order = np.empty(shape + (len(sinusoid.X_ALL),), np.int32)
  for i in range(num_iterations):
    for b in range(meta_batch_size):
      a, p = sinusoid.sample_tasks(rng, 1)
      amplitude[i, b], phase[i, b] = a[0], p[0]
      order[i, b] = rng.permutation(len(sinusoid.X_ALL))
  return {"amplitude": amplitude, "phase": phase, "order": order}


def _points(start: int):
  """Takes the task's points start … start + 10 (in the drawn order) from a batch [..., 50, 1]."""
  end = start + sinusoid.NUM_TRAIN_POINTS
  return lambda batch: tf.nest.map_structure(lambda v: v[..., start:end, :], batch)


def _meta_gradient(algorithm: str, inner_steps: int, inner_lr: float):
  """``(batch, params) -> (cost, grads)`` of one library step on tasks of 50 points [tasks, 50, 1].

  Reptile trains on the first 10 points. FOMAML and MAML adapt on the first 10 and take the outer
  cost on the next 10 (MAML's K = 10 training and K = 10 test points per task): their gradient is
  that of the adapted model on points it did not train on.
  """
  if algorithm == "reptile":
    return lambda b, p: meta_learning.reptile_step(_points(0)(b), sinusoid.mse_cost, p,
                                                   inner_steps, inner_lr, batched=False)
  step_fn = getattr(meta_learning, f"{algorithm}_step")
  return lambda b, p: step_fn(b, sinusoid.mse_cost, None, p, inner_steps, inner_lr,
                              inner_batch_fn=_points(0),
                              outer_batch_fn=_points(sinusoid.NUM_TRAIN_POINTS),
                              batched=False)[:2]


def _seed_update(x, y, params, inner_steps: int, inner_lr: float):
  """The demo's Reptile for tasks x, y [tasks, 50, 1] in their drawn order: (cost, θ − mean φ)."""
  num_batches = len(sinusoid.X_ALL) // sinusoid.NUM_TRAIN_POINTS
  costs, differences = [], []
  for task in range(x.shape[0]):
    adapted = params
    for step in range(inner_steps):
      start = (step % num_batches) * sinusoid.NUM_TRAIN_POINTS
      batch = {"x": x[task, start:start + sinusoid.NUM_TRAIN_POINTS],
               "y": y[task, start:start + sinusoid.NUM_TRAIN_POINTS]}
      with tf.GradientTape() as tape:
        tape.watch(adapted)
        cost = sinusoid.mse_cost(batch, adapted)
      if step == 0:
        costs.append(cost)
      adapted = gradient_descent_update(adapted, tape.gradient(cost, adapted), inner_lr)
    differences.append(tf.nest.map_structure(tf.subtract, params, adapted))
  mean = tf.nest.map_structure(lambda *d: tf.add_n(list(d)) / len(d), *differences)
  return tf.add_n(costs) / len(costs), mean


def _compiled_loop(algorithm: str, variant: str, num_iterations: int, inner_steps: int,
                   inner_lr: float, outer_lr: float):
  """``run(params, tasks, start, count) -> (params, mean cost)``: iterations start … start+count−1."""
  library_gradient = _meta_gradient(algorithm, inner_steps, inner_lr)
  outer_scale = inner_lr ** 2 * (inner_steps + 1) if algorithm == "reptile" else 1.0
  x_all = tf.constant(sinusoid.X_ALL)

  def iteration(i, params, tasks):
    x = tf.gather(x_all, tasks["order"][i])  # [tasks, 50, 1], in the drawn order.
    y = (tasks["amplitude"][i][:, None, None]
         * tf.sin(x + tasks["phase"][i][:, None, None]))
    fraction_done = tf.cast(i, tf.float32) / num_iterations
    step_size = outer_lr * (1.0 - fraction_done)
    if variant == "seed":
      cost, direction = _seed_update(x, y, params, inner_steps, inner_lr)
    else:
      cost, direction = library_gradient({"x": x, "y": y}, params)
      step_size *= outer_scale
    return cost, gradient_descent_update(params, direction, step_size)

  @tf.function(jit_compile=True)
  def run(params, tasks, start, count):
    def body(i, params, total):
      cost, params = iteration(i, params, tasks)
      return i + 1, params, total + cost
    _, params, total = tf.while_loop(lambda i, *_: i < start + count, body,
                                     (start, params, tf.constant(0.0)))
    return params, total / tf.cast(tf.maximum(count, 1), tf.float32)

  return run


def train_sinusoid(algorithm: str, num_iterations: int, meta_batch_size: int, inner_steps: int,
                   inner_lr: float, outer_lr: float, seed: int,
                   logging_period: int = LOGGING_PERIOD, variant: str = "seed",
                   save_path: str | None = None, checkpoint_every: int | None = None,
                   resume: bool = False) -> SinusoidResult:
  """Meta-trains the sine MLP's initialisation; see the module docstring.

  Args:
    algorithm: "reptile", "fomaml" or "maml".
    num_iterations: outer iterations; the outer step size is annealed to 0 over them.
    meta_batch_size: tasks per outer iteration (their updates are averaged).
    inner_steps: SGD steps per task; inner_lr their step size.
    outer_lr: initial outer step size ε.
    seed: seeds the initial weights and every task; the same seed gives the same result.
    logging_period: iterations per compiled call (and per progress line).
    variant: "seed" (the demo's Reptile; Reptile only) or "library".
    save_path / checkpoint_every: keep a resumable checkpoint under ``save_path/checkpoints`` every
      ``checkpoint_every`` iterations (rounded up to whole compiled calls).
    resume: continue from the latest checkpoint under ``save_path``.

  Raises:
    ValueError: unknown algorithm or variant, or a variant the algorithm does not have.
    FloatingPointError: the meta cost became NaN or infinite.
  """
  if algorithm not in ALGORITHMS:
    raise ValueError(f"Unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}.")
  if variant not in VARIANTS:
    raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
  if variant == "seed" and algorithm != "reptile":
    raise ValueError(f"variant='seed' is the Reptile demo's algorithm; use variant='library' for "
                     f"{algorithm}.")
  if (checkpoint_every or resume) and not save_path:
    raise ValueError("Checkpointing and resuming need a save_path.")
  params = tf.nest.map_structure(tf.Variable, sinusoid.init_params(seed))
  iteration = tf.Variable(0, dtype=tf.int64)
  manager = None
  if save_path and (checkpoint_every or resume):
    manager = checkpoint.resumable(os.path.join(save_path, CHECKPOINT_DIR),
                                   dict(params=params, iteration=iteration), resume,
                                   f"sinusoid, {algorithm}")
  start_iteration = int(iteration.numpy())
  tasks = {k: tf.constant(v) for k, v in draw_tasks(seed, num_iterations, meta_batch_size).items()}
  values = tf.nest.map_structure(tf.convert_to_tensor, params)
  compile_start = time.perf_counter()
  # The concrete function: a call skips tf.function's argument matching (half its 0.3 ms).
  run = _compiled_loop(algorithm, variant, num_iterations, inner_steps, inner_lr,
                       outer_lr).get_concrete_function(values, tasks, tf.constant(0), tf.constant(0))
  run(values, tasks, tf.constant(0), tf.constant(0))  # Compiles; runs no iteration.
  compile_seconds = time.perf_counter() - compile_start
  chunk = max(1, logging_period)
  last_checkpoint, train_seconds = start_iteration, 0.0
  for start in range(start_iteration, num_iterations, chunk):
    count = min(chunk, num_iterations - start)
    begin = time.perf_counter()
    values, cost = run(values, tasks, tf.constant(start), tf.constant(count))
    cost = float(cost)
    train_seconds += time.perf_counter() - begin
    if not np.isfinite(cost):
      raise FloatingPointError(
          f"The meta cost became {cost} in iterations {start + 1}–{start + count}: meta-training "
          "diverged. Lower --outer_learning_rate or --inner_learning_rate.")
    logging.info("iteration %d  mean meta cost %.4f  %.0f it/s", start + count, cost,
                 (start + count - start_iteration) / train_seconds)
    if manager and checkpoint_every and start + count - last_checkpoint >= checkpoint_every:
      tf.nest.map_structure(lambda var, value: var.assign(value), params, values)
      iteration.assign(start + count)
      manager.save()
      last_checkpoint = start + count
  done = num_iterations - start_iteration
  return SinusoidResult(values, done / train_seconds if train_seconds else 0.0, compile_seconds,
                        start_iteration)


def save(params, save_path: str, config: dict) -> None:
  """Writes the parameters as a ``tf.train.Checkpoint`` and the config as JSON (atomically)."""
  checkpoint.save(save_path, PARAMS_PREFIX,
                  {"params": tf.nest.map_structure(tf.Variable, params)}, config)


def load_params(path: str | None, seed: int = 0) -> sinusoid.Params:
  """The parameters saved by train.py at ``path``; the untrained initialisation without one."""
  params = tf.nest.map_structure(tf.Variable, sinusoid.init_params(seed))
  if path is None:
    return tf.nest.map_structure(tf.convert_to_tensor, params)
  config = checkpoint.read_config(path, "sinusoid model")
  if config.get("problem") != "sinusoid":
    raise checkpoint.LoadError(f"{path!r} holds a {config.get('problem')!r} model, not a "
                               "sinusoid one.")
  checkpoint.read_weights(path, PARAMS_PREFIX, "sinusoid model")
  try:
    tf.train.Checkpoint(params=params).read(os.path.join(path, PARAMS_PREFIX)).assert_consumed()
  except (AssertionError, ValueError) as e:
    raise checkpoint.LoadError(f"The sinusoid model at {path!r} does not fit the 1-64-64-1 "
                               f"MLP: {str(e).splitlines()[0]}") from e
  return tf.nest.map_structure(tf.convert_to_tensor, params)


def adapted_predictions(params: sinusoid.Params, x_train: np.ndarray, y_train: np.ndarray,
                        max_steps: int, adapt_lr: float) -> np.ndarray:
  """Predictions on the 50 points after 0 … max_steps SGD steps on one task's (x_train, y_train).

  Returns [max_steps + 1, 50, 1].
  """
  return _adapt_fn(max_steps, adapt_lr)(params, x_train, y_train).numpy()


def _adapt_fn(max_steps: int, adapt_lr: float):
  @tf.function
  def adapt(params, x, y):
    predictions = []
    for step in range(max_steps + 1):
      predictions.append(sinusoid.forward(params, sinusoid.X_ALL))
      if step < max_steps:
        with tf.GradientTape() as tape:
          tape.watch(params)
          cost = sinusoid.mse_cost({"x": x, "y": y}, params)
        params = gradient_descent_update(params, tape.gradient(cost, params), adapt_lr)
    return tf.stack(predictions)
  return adapt


def held_out_tasks(num_tasks: int, seed: int) -> dict[str, np.ndarray]:
  """``num_tasks`` tasks from ``seed``: 10 training points each (``x_train``, ``y_train``, their
  ``index`` into ``X_ALL``), the values on all 50 (``y_all``), ``amplitude`` and ``phase``."""
  rng = np.random.RandomState(seed)
  amplitude, phase = sinusoid.sample_tasks(rng, num_tasks)
  index = np.stack([rng.choice(len(sinusoid.X_ALL), sinusoid.NUM_TRAIN_POINTS, replace=False)
                    for _ in range(num_tasks)]).astype(np.int32)
  x_train = sinusoid.X_ALL[index]
  return {"x_train": x_train, "y_train": sinusoid.task_values(amplitude, phase, x_train),
          "y_all": sinusoid.task_values(amplitude, phase, sinusoid.X_ALL), "index": index,
          "amplitude": amplitude, "phase": phase}


def evaluate_sinusoid(params: sinusoid.Params, num_tasks: int, adapt_steps: list[int],
                      adapt_lr: float, seed: int) -> dict:
  """Mean / median MSE over the 50 points after k SGD steps on 10 points, per k."""
  tasks = held_out_tasks(num_tasks, seed)
  adapt = _adapt_fn(max(adapt_steps), adapt_lr)
  curves = np.stack([
      np.mean(np.square(adapt(params, tasks["x_train"][i], tasks["y_train"][i]).numpy()
                        - tasks["y_all"][i]), axis=(1, 2)) for i in range(num_tasks)])
  return {"mse": {str(k): {"mean": float(curves[:, k].mean()),
                           "median": float(np.median(curves[:, k]))} for k in adapt_steps},
          "num_tasks": num_tasks, "adapt_learning_rate": adapt_lr, "seed": seed}
