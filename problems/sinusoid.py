"""Sine-wave regression tasks (Finn et al. 2017; the Reptile demo's setting).

A task is ``y = amplitude * sin(x + phase)`` with amplitude ~ U(0.1, 5) and phase ~ U(0, 2π), observed
on the 50 points ``linspace(-5, 5, 50)`` and trained on minibatches of 10 of them. The model is the
demo's 1-64-64-1 tanh MLP (the demo notes tanh beats the paper's ReLU), initialised exactly as the
demo's PyTorch model is for the same seed (``init_params``).

The meta-learning steps work on parameter dicts, so the model is a pure function of its parameters
(``forward``) with ``SineMLP`` as the Sonnet module that owns them as variables.
"""

import math
from typing import Sequence

import numpy as np
import sonnet as snt
import tensorflow as tf

X_ALL = np.linspace(-5, 5, 50, dtype=np.float32)[:, None]  # [50, 1]
NUM_TRAIN_POINTS = 10
LAYER_SIZES = (1, 64, 64, 1)
AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, 2 * np.pi)

Params = dict[str, dict[str, tf.Tensor]]


def sample_tasks(rng: np.random.RandomState, num_tasks: int) -> tuple[np.ndarray, np.ndarray]:
  """Draws ``num_tasks`` (amplitude, phase) pairs, phase first as the demo's ``gen_task`` does."""
  phase = np.empty(num_tasks, np.float32)
  amplitude = np.empty(num_tasks, np.float32)
  for i in range(num_tasks):
    phase[i] = rng.uniform(*PHASE_RANGE)
    amplitude[i] = rng.uniform(*AMPLITUDE_RANGE)
  return amplitude, phase


def task_values(amplitude: np.ndarray, phase: np.ndarray, x: np.ndarray) -> np.ndarray:
  """``amplitude * sin(x + phase)`` per task: amplitude, phase [T]; x [T, n, 1] or [n, 1]."""
  return np.sin(x + phase[:, None, None]) * amplitude[:, None, None]


def _torch_uniform(rng: np.random.RandomState, shape: tuple[int, ...], bound: float) -> np.ndarray:
  """U(-bound, bound) as PyTorch's CPU ``uniform_`` draws it from a generator seeded alike.

  ``torch.manual_seed(s)`` seeds the same Mersenne Twister as ``RandomState(s)``; ``uniform_`` turns
  each 32-bit output into ``(bits & (2²⁴ − 1)) · 2⁻²⁴ · (to − from) + from`` in float32, in
  row-major order.
  """
  bits = rng.randint(0, 2**32, size=int(np.prod(shape)), dtype=np.uint32)
  unit = (bits & 0xFFFFFF).astype(np.float32) * np.float32(2.0**-24)
  low, high = np.float32(-bound), np.float32(bound)
  return (unit * (high - low) + low).reshape(shape)


def init_params(seed: int) -> Params:
  """The demo's initial weights for ``torch.manual_seed(seed)``: PyTorch's ``nn.Linear`` default,
  U(-1/√fan_in, 1/√fan_in) for weights (kaiming-uniform with a = √5) and biases, drawn in the
  demo's order (each layer's weight [out, in], then its bias) without needing PyTorch."""
  rng = np.random.RandomState(seed)
  params = {}
  gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
  for i, (fan_in, fan_out) in enumerate(zip(LAYER_SIZES[:-1], LAYER_SIZES[1:])):
    weight = _torch_uniform(rng, (fan_out, fan_in), math.sqrt(3.0) * gain / math.sqrt(fan_in))
    bias = _torch_uniform(rng, (fan_out,), 1.0 / math.sqrt(fan_in))
    params[f"linear_{i}"] = {"w": tf.constant(weight.T), "b": tf.constant(bias)}
  return params


def forward(params: Params, x: tf.Tensor) -> tf.Tensor:
  """The MLP on inputs ``x`` [..., n, 1]; returns [..., n, 1].

  ``params`` holds one model (w [in, out], b [out]) or a stack of T models (w [T, in, out],
  b [T, out]) applied to x [T, n, 1], one model per task.
  """
  h = x
  names = sorted(params)
  for i, name in enumerate(names):
    w, b = params[name]["w"], params[name]["b"]
    if w.shape.rank == 3:
      b = b[:, None, :]
    if w.shape[-2] == 1:  # [..., n, 1] x [1, m]: an outer product, fused by XLA unlike a dot.
      h = h * w
    elif w.shape[-1] == 1:  # [..., n, k] x [k, 1]: a weighted sum, likewise.
      h = tf.reduce_sum(h * tf.linalg.matrix_transpose(w), -1, keepdims=True)
    else:
      h = tf.matmul(h, w)
    h = h + b
    if i < len(names) - 1:
      h = tf.tanh(h)
  return h


def pack(leaves: Sequence[tf.Tensor]) -> Params:
  """The MLP's parameters from their leaves in ``tf.nest.flatten`` order (layer by layer, b, w)."""
  template = {f"linear_{i}": {"b": None, "w": None} for i in range(len(LAYER_SIZES) - 1)}
  return tf.nest.pack_sequence_as(template, list(leaves))


def mse_cost(batch: dict, params: Params) -> tf.Tensor:
  """Mean squared error on ``batch = {"x": [..., n, 1], "y": [..., n, 1]}``: a meta-learning cost."""
  return tf.reduce_mean(tf.square(forward(params, batch["x"]) - batch["y"]))


class SineMLP(snt.Module):
  """The 1-64-64-1 tanh MLP holding its parameters as ``tf.Variable``s."""

  def __init__(self, seed: int = 0, name: str | None = None):
    """Args: seed: seed of the PyTorch-default initialisation. name: module name."""
    super().__init__(name=name)
    self.params = tf.nest.map_structure(tf.Variable, init_params(seed))

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    """x: [..., 1] -> predictions [..., 1]."""
    return forward(self.params, x)


def adaptation_problem(params: Params, num_tasks: int, tasks: dict | None = None):
  """A ``make_loss`` for few-shot adaptation from ``params``: ``num_tasks`` tasks at once.

  Each task has its own copy of the MLP, starting at ``params``, and 10 training points; the loss is
  the sum over tasks of each task's MSE on its 10 points, so that every copy's gradient is its own
  task's (an SGD step of 0.02 is the demo's adaptation step). Tasks are drawn afresh at every
  re-initialisation (amplitude, phase and points are non-trainable variables with random initial
  values), unless ``tasks`` fixes them: ``{"amplitude": [T], "phase": [T], "index": [T, 10]}``
  (indices into ``X_ALL``), e.g. held-out tasks for evaluation.
  """
  paths = [(n, p) for n in sorted(params) for p in sorted(params[n])]  # tf.nest.flatten's order.
  x_all = tf.constant(X_ALL)

  def fresh_index():
    return tf.argsort(tf.random.uniform([num_tasks, len(X_ALL)]), -1)[:, :NUM_TRAIN_POINTS]

  def make_loss() -> tf.Tensor:
    if tasks is None:
      amplitude = tf.Variable(lambda: tf.random.uniform([num_tasks], *AMPLITUDE_RANGE),
                              trainable=False, name="amplitude")
      phase = tf.Variable(lambda: tf.random.uniform([num_tasks], *PHASE_RANGE), trainable=False,
                          name="phase")
      index = tf.Variable(fresh_index, trainable=False, name="index")
    else:
      amplitude, phase, index = (tf.constant(tasks[k]) for k in ("amplitude", "phase", "index"))
    models = pack([tf.Variable(lambda v=v: tf.tile(v[None], [num_tasks] + [1] * v.shape.rank),
                               name=f"{n}/{p}")
                   for v, (n, p) in zip(tf.nest.flatten(params), paths)])
    x = tf.gather(x_all, index)  # [T, 10, 1]
    y = amplitude[:, None, None] * tf.sin(x + phase[:, None, None])
    per_task = tf.reduce_mean(tf.square(forward(models, x) - y), [1, 2])
    return tf.reduce_sum(per_task)

  return make_loss
