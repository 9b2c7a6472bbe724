"""The inner loop of meta-training: B inner problems optimized by a learned optimizer at once.

The state passes in and out as tensors (``TaskState``; every leaf has a leading problem axis), so
the same function serves truncated BPTT (differentiate through it), ES / PES (run it at perturbed
weights, one copy per problem) and ``tf.distribute`` (run it per replica). One ``Unroll`` call runs
``num_steps`` steps in a ``tf.while_loop`` with a static trip count (it compiles with XLA).

Problems are laid out ``[copies, tasks]``: problem ``i`` runs task slot ``i % num_tasks``, so the
``copies`` problems of a slot (the two halves of an antithetic pair, say) see the same task, the
same initialisation and the same minibatches, and reset together. Each slot has its own step
counter and horizon; when a slot reaches its horizon (or its loss is no longer finite) it draws its
next task, from the seed ``fold(slot_seed, draw)`` (``slot_seed = fold(seed, slot)``, kept in the
state), while the others go on.
"""

from typing import Any, NamedTuple, Sequence

import tensorflow as tf

from l2l import tasks as tasks_lib
from l2l.routing import NetGroups


class TaskState(NamedTuple):
  """Where every inner problem is; each leaf has a leading axis of problems."""
  params: list[tf.Tensor]
  opt_state: list[Any]
  config: Any  # The task each problem runs (see tasks.TaskFamily.sample).
  task_seed: tf.Tensor  # int64 [B, 2]: the seed its task was drawn from.
  slot_seed: tf.Tensor  # int64 [B, 2]: the seed its slot draws its tasks from.
  step: tf.Tensor  # int32 [B]: steps taken on the current task.
  horizon: tf.Tensor  # int32 [B]: steps the current task runs before it is replaced.
  draws: tf.Tensor  # int32 [B]: tasks the problem's slot has drawn so far.
  nonfinite: tf.Tensor  # int32 [B]: truncations whose mean loss was not finite.


class UnrollResult(NamedTuple):
  losses: tf.Tensor  # [B]: each problem's mean training loss over the steps.
  state: TaskState
  reset: tf.Tensor  # bool [B]: the problem's task reached its horizon and was replaced.
  final_loss: tf.Tensor  # [B]: the loss of the last step.


class Unroll:
  """``unroll(theta, state, num_steps) -> UnrollResult`` over a family's tasks; see the module
  docstring. ``init(seed)`` gives the starting ``TaskState``."""

  def __init__(self, family: tasks_lib.TaskFamily, optimizer: NetGroups,
               horizon: tasks_lib.Horizon, num_tasks: int, copies: int = 1,
               second_derivatives: bool = False):
    """Args:
      family: where the tasks come from.
      optimizer: the learned optimizer.
      horizon: the schedule of task lengths.
      num_tasks: task slots.
      copies: problems per slot.
      second_derivatives: let a meta-gradient flow through the inner gradients (the paper and
        ES / PES do without).
    """
    if num_tasks < 1 or copies < 1:
      raise ValueError(f"num_tasks and copies must be positive, got {num_tasks} and {copies}.")
    self.family, self.optimizer, self.horizon = family, optimizer, horizon
    self.num_tasks, self.copies = num_tasks, copies
    self.second_derivatives = second_derivatives
    self.num_problems = num_tasks * copies
    self.shapes = family.param_shapes()
    optimizer.build(self.shapes)

  def _draw(self, slot_seeds: tf.Tensor, draws: tf.Tensor):
    """(config, params, task seeds, horizons): the tasks the slots draw at ``draws``."""
    task_seeds = tf.map_fn(lambda args: tasks_lib.fold(args[0], args[1]), (slot_seeds, draws),
                           fn_output_signature=tf.int64)

    def draw(task_seed):
      config = self.family.sample(tasks_lib.fold(task_seed, 0))
      params = self.family.init(config, tasks_lib.fold(task_seed, 1))
      horizon = self.horizon.sample(tasks_lib.fold(task_seed, 2))
      return config, params, horizon

    config, params, horizon = tasks_lib.mapped(draw, task_seeds)
    return config, list(params), task_seeds, horizon

  def _slots(self) -> tf.Tensor:
    return tf.tile(tf.range(self.num_tasks), [self.copies])

  def init(self, seed: int | tf.Tensor) -> TaskState:
    """Every slot's first task (draw 0)."""
    seed = tasks_lib.as_seed(seed)
    slot_seeds = tf.map_fn(lambda slot: tasks_lib.fold(seed, slot), self._slots(),
                           fn_output_signature=tf.int64)
    draws = tf.zeros([self.num_problems], tf.int32)
    config, params, task_seeds, horizon = self._draw(slot_seeds, draws)
    return TaskState(params, self.optimizer.batched_initial_state(self.shapes, self.num_problems,
                                                                  horizon),
                     config, task_seeds, slot_seeds, tf.zeros([self.num_problems], tf.int32),
                     horizon, draws, tf.zeros([self.num_problems], tf.int32))

  def losses_and_grads(self, state: TaskState) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """Every problem's training loss on its current minibatch, and its gradient."""
    def batch(config, task_seed, step):
      return self.family.batch(config, tasks_lib.fold(task_seed, 3, step))

    data = tasks_lib.mapped(batch, state.config, state.task_seed, state.step)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(state.params)
      losses = self.family.batched_loss(state.config, state.params, data)
      total = tf.reduce_sum(losses)
    grads = tape.gradient(total, state.params,
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    if not self.second_derivatives:
      grads = [tf.stop_gradient(g) for g in grads]
    return losses, grads

  def _reset_finished(self, state: TaskState, losses: tf.Tensor) -> tuple[TaskState, tf.Tensor]:
    """Replaces the tasks that reached their horizon, and those that diverged (their whole
    slot: every copy)."""
    diverged = tf.reduce_any(tf.reshape(~tf.math.is_finite(losses),
                                        [self.copies, self.num_tasks]), 0)
    done = (state.step >= state.horizon) | tf.tile(diverged, [self.copies])

    def replace(state):
      draws = state.draws + tf.cast(done, tf.int32)
      config, params, task_seeds, horizon = self._draw(state.slot_seed, draws)
      fresh_opt = self.optimizer.batched_initial_state(self.shapes, self.num_problems, horizon)

      def pick(new, old):
        mask = tf.reshape(done, [-1] + [1] * (old.shape.rank - 1))
        return tf.where(mask, tf.cast(new, old.dtype), old)

      return TaskState(
          tf.nest.map_structure(pick, params, state.params),
          tf.nest.map_structure(pick, fresh_opt, state.opt_state),
          tf.nest.map_structure(pick, config, state.config),
          pick(task_seeds, state.task_seed), state.slot_seed, tf.where(done, 0, state.step),
          pick(horizon, state.horizon), draws, state.nonfinite)

    state = tf.cond(tf.reduce_any(done), lambda: replace(state), lambda: state)
    return state, done

  def __call__(self, theta: Sequence[tf.Tensor], state: TaskState, num_steps: int | tf.Tensor
               ) -> UnrollResult:
    """``num_steps`` (≥ 1; a tensor gives a dynamic trip count) steps of every problem at the
    optimizer weights ``theta`` (shared, or one copy per problem on a leading axis)."""
    theta = list(theta)

    def body(t, state, total, reset, last):
      losses, grads = self.losses_and_grads(state)
      updates, opt_state = self.optimizer.updates(state.params, grads, losses, state.opt_state,
                                                  theta, batch_dims=1)
      params = [p + tf.cast(u, p.dtype) for p, u in zip(state.params, updates)]
      state = state._replace(params=params, opt_state=opt_state, step=state.step + 1)
      state, done = self._reset_finished(state, losses)
      return t + 1, state, total + losses, reset | done, losses

    zeros = tf.zeros([self.num_problems])
    _, state, total, reset, last = tf.while_loop(
        lambda t, *_: t < num_steps, body,
        (tf.constant(0), state, zeros, tf.zeros([self.num_problems], tf.bool), zeros),
        maximum_iterations=num_steps)
    losses = total / tf.cast(num_steps, total.dtype)
    state = state._replace(
        nonfinite=state.nonfinite + tf.cast(~tf.math.is_finite(losses), tf.int32))
    return UnrollResult(losses, state, reset, last)
