"""The interface of nets that update whole tensors and read their values and the loss."""

from typing import Any, Sequence

import sonnet as snt
import tensorflow as tf

State = Any  # A nested structure of tensors whose shapes depend only on the optimizee's shapes.


class TensorNetwork(snt.Module):
  """A learned optimizer that sees each tensor whole, with its current value, and the loss.

  Unlike the row nets of ``l2l.networks`` (gradient rows in, update rows out), it may use
  per-tensor statistics (RMS, factored second moments) and state shared by all tensors (a
  schedule driven by the loss): ``updates(params, grads, loss, state) -> (updates, state)``, one
  update per tensor, to be added to it.
  """

  def initial_state(self, shapes: Sequence[Sequence[int]]) -> State:
    """The state before the first step, for tensors of ``shapes``."""
    raise NotImplementedError

  def with_horizon(self, state: State, num_steps: tf.Tensor) -> State:
    """``state`` (from ``initial_state``, possibly with leading batch axes) told that its training
    runs ``num_steps`` steps (a tensor of the batch axes' shape). Nets that ignore the horizon
    return it unchanged."""
    del num_steps
    return state

  def weight_list(self) -> list[tf.Variable]:
    """The weights ``apply`` takes, in its order."""
    return []

  def apply(self, theta: Sequence[tf.Tensor], params: Sequence[tf.Tensor],
            grads: Sequence[tf.Tensor], loss: tf.Tensor, state: State
            ) -> tuple[list[tf.Tensor], State]:
    """One step at weights ``theta``: the update to add to each tensor, and the next state."""
    raise NotImplementedError

  def updates(self, params: Sequence[tf.Tensor], grads: Sequence[tf.Tensor], loss: tf.Tensor,
              state: State) -> tuple[list[tf.Tensor], State]:
    """One step with the net's own weights."""
    return self.apply(self.weight_list(), params, grads, loss, state)
