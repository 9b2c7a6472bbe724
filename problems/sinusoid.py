"""Sine-wave regression tasks (Finn et al. 2017; the Reptile demo's setting).

A task is ``y = amplitude * sin(x + phase)`` with amplitude ~ U(0.1, 5) and phase ~ U(0, 2π), observed
on the 50 points ``linspace(-5, 5, 50)`` and trained on minibatches of 10 of them. The model is the
demo's 1-64-64-1 tanh MLP (the demo notes tanh beats the paper's ReLU), with PyTorch's default
``nn.Linear`` initialisation, U(-1/√fan_in, 1/√fan_in) for weights and biases.

The meta-learning steps work on parameter dicts, so the model is a pure function of its parameters
(``forward``) with ``SineMLP`` as the Sonnet module that owns them as variables.
"""

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


def init_params(seed: int) -> Params:
  """PyTorch-default initialisation of the 1-64-64-1 MLP, as numpy-free float32 tensors."""
  rng = np.random.RandomState(seed)
  params = {}
  for i, (fan_in, fan_out) in enumerate(zip(LAYER_SIZES[:-1], LAYER_SIZES[1:])):
    bound = 1.0 / np.sqrt(fan_in)
    params[f"linear_{i}"] = {
        "w": tf.constant(rng.uniform(-bound, bound, (fan_in, fan_out)), tf.float32),
        "b": tf.constant(rng.uniform(-bound, bound, (fan_out,)), tf.float32)}
  return params


def forward(params: Params, x: tf.Tensor) -> tf.Tensor:
  """The MLP on inputs ``x`` of shape [..., 1]; returns [..., 1]."""
  h = x
  names = sorted(params)
  for i, name in enumerate(names):
    w = params[name]["w"]
    if w.shape[0] == 1:  # [..., n, 1] x [1, m]: an outer product, fused by XLA unlike a dot.
      h = h * w
    elif w.shape[1] == 1:  # [..., n, k] x [k, 1]: a weighted sum, likewise.
      h = tf.reduce_sum(h * tf.transpose(w), -1, keepdims=True)
    else:
      h = tf.matmul(h, w)
    h = h + params[name]["b"]
    if i < len(names) - 1:
      h = tf.tanh(h)
  return h


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
