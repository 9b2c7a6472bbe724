"""ES estimates that carry no state: what an asynchronous worker runs.

A worker of ``--strategy=parameter_server`` may run a scheduled estimate twice (after a failure),
so the estimate must be a pure function of the weights and a seed. ``FreshTaskEstimate`` draws
``num_tasks`` fresh tasks from the seed, trains them with the unperturbed weights for a number of
steps drawn uniformly from ``1 … burn_in`` (so estimates see every part of training, not only its
start), then runs antithetic ES (``TruncatedES``) over the next ``truncation`` steps. The price of
having no state is the burn-in: on average ``burn_in / 2`` steps of ``num_tasks`` problems per
estimate, against ``truncation`` steps of ``2 · num_particles · num_tasks`` for the ES itself.
"""

from typing import Callable

import tensorflow as tf

from l2l import networks
from l2l import routing
from l2l import tasks as tasks_lib
from l2l import unroll as unroll_lib
from l2l.estimators.es import EstimatorState, TruncatedES


class FreshTaskEstimate(tf.Module):
  """``estimate(theta, seed) -> (meta_loss, grads, capped)`` on fresh tasks of one family."""

  def __init__(self, family: tasks_lib.TaskFamily, nets: dict[str, networks.Network],
               net_assignments: routing.NetAssignments | None, num_tasks: int,
               num_particles: int, sigma: float, truncation: int, horizon: tasks_lib.Horizon,
               burn_in: int, cap_losses: Callable[[tf.Tensor], tf.Tensor], jit_compile: bool):
    """Args:
      family, nets, net_assignments: the tasks and the learned optimizer's nets.
      num_tasks, num_particles, sigma, truncation, horizon: as in ``EstimatorConfig``.
      burn_in: the most steps the tasks are trained before the ES truncation (≥ 1).
      cap_losses: the outer learner's policy for non-finite meta-losses.
      jit_compile: compile the estimate with XLA.
    """
    super().__init__(name=f"fresh_{family.name}")
    if burn_in < 1:
      raise ValueError(f"burn_in must be at least one step, got {burn_in}.")
    groups = routing.assign_nets(family.param_names(), list(nets), net_assignments)
    self.groups = routing.NetGroups(nets, groups)
    self._burn = unroll_lib.Unroll(family, self.groups, horizon, num_tasks)
    self._es_unroll = unroll_lib.Unroll(family, self.groups, horizon, num_tasks,
                                        2 * num_particles)
    self._copies, self._burn_in, self._truncation = 2 * num_particles, burn_in, truncation

    def unroll_fn(theta, state):
      result = self._es_unroll(theta, state, truncation)
      return cap_losses(result.losses), result.state, result.reset

    self._es = TruncatedES(unroll_fn, num_pairs=num_particles * num_tasks, sigma=sigma)
    self.estimate = tf.function(self._estimate, jit_compile=jit_compile)

  def _estimate(self, theta: list[tf.Tensor], seed: tf.Tensor
                ) -> tuple[tf.Tensor, list[tf.Tensor], tf.Tensor]:
    """(mean meta-loss, ES gradient, problems whose meta-loss was not finite)."""
    state = self._burn.init(tasks_lib.fold(seed, 0))
    steps = tf.random.stateless_uniform([], tasks_lib.fold(seed, 1), minval=1,
                                        maxval=self._burn_in + 1, dtype=tf.int32)
    state = self._burn(theta, state, steps).state
    state = tf.nest.map_structure(
        lambda leaf: tf.tile(leaf, [self._copies] + [1] * (leaf.shape.rank - 1)), state)
    state = state._replace(nonfinite=tf.zeros_like(state.nonfinite))
    meta_loss, grads, after = self._es.estimate(theta, EstimatorState(state),
                                                tasks_lib.fold(seed, 2))
    return meta_loss, grads, tf.reduce_sum(after.unroll_state.nonfinite)
