"""One estimator on one task family, with its state in variables: what an outer step runs."""

import dataclasses

import tensorflow as tf

from l2l import networks
from l2l import outer
from l2l import routing
from l2l import tasks as tasks_lib
from l2l import unroll as unroll_lib
from l2l import variables as variables_lib
from l2l.estimators.es import TruncatedES, Unroll
from l2l.estimators.pes import PES
from l2l.estimators.tbptt import TruncatedBPTT

ESTIMATORS = ("tbptt", "es", "pes")


@dataclasses.dataclass(frozen=True)
class EstimatorConfig:
  """How meta-gradients are estimated."""
  estimator: str = "pes"  # One of estimators.ESTIMATORS.
  num_tasks: int = 8  # K tasks per estimate.
  num_particles: int = 1  # Antithetic pairs per task (es, pes).
  sigma: float = 0.01  # Standard deviation of the perturbations (es, pes).
  truncation: int = 20  # Inner steps per estimate.
  horizon: tasks_lib.Horizon = tasks_lib.ConstantHorizon(100)

  def __post_init__(self):
    if self.estimator not in ESTIMATORS:
      raise ValueError(f"Unknown estimator {self.estimator!r}; choose one of "
                       f"{ESTIMATORS}.")
    if min(self.num_tasks, self.num_particles, self.truncation) < 1 or not self.sigma > 0:
      raise ValueError("num_tasks, num_particles and truncation must be positive and sigma > 0, "
                       f"got {self.num_tasks}, {self.num_particles}, {self.truncation}, "
                       f"{self.sigma}.")


def make_estimator(config: EstimatorConfig, unroll: Unroll
                   ) -> TruncatedBPTT | TruncatedES | PES:
  """The estimator named by ``config`` around ``unroll``."""
  if config.estimator == "tbptt":
    return TruncatedBPTT(unroll)
  cls = PES if config.estimator == "pes" else TruncatedES
  return cls(unroll, num_pairs=config.num_particles * config.num_tasks, sigma=config.sigma)


class FamilyEstimate(tf.Module):
  """One family's tasks, estimator and estimator state (in variables, for checkpoints).

  Under a ``tf.distribute`` strategy with N replicas, every replica runs the estimator on its own
  ``config.num_tasks`` tasks (drawn from ``fold(seed, replica)``, noise from ``fold(noise_seed,
  replica)``); the state variables stack the replicas' states on a leading axis, the estimates
  are averaged (all-reduce) and the learner applies their mean once.
  """

  def __init__(self, family: tasks_lib.TaskFamily, nets: dict[str, networks.Network],
               net_assignments: routing.NetAssignments | None, config: EstimatorConfig,
               learner: outer.OuterLearner, seed: tf.Tensor, jit_compile: bool,
               strategy: tf.distribute.Strategy | None = None):
    super().__init__(name=f"family_{family.name}")
    self._strategy = strategy
    groups = routing.assign_nets(family.param_names(), list(nets), net_assignments)
    self.groups = routing.NetGroups(nets, groups)
    copies = 1 if config.estimator == "tbptt" else 2 * config.num_particles
    self.unroll = unroll_lib.Unroll(family, self.groups, config.horizon, config.num_tasks, copies)
    self._learner, self._truncation = learner, config.truncation

    def unroll_fn(theta, state):
      result = self.unroll(theta, state, self._truncation)
      return learner.cap_losses(result.losses), result.state, result.reset

    self.estimator = make_estimator(config, unroll_fn)
    theta = self.groups.theta()
    initial = self.estimator.init_state(self.unroll.init(seed), theta)
    self._pack = lambda flat: tf.nest.pack_sequence_as(initial, flat)
    flat = tf.nest.flatten(initial)
    if strategy is not None:
      replicas = [tf.nest.flatten(self.estimator.init_state(
          self.unroll.init(tasks_lib.fold(seed, r)), theta))
                  for r in range(strategy.num_replicas_in_sync)]
      flat = [tf.stack(leaves) for leaves in zip(*replicas)]
    self.state_variables = variables_lib.state_variables(flat, "estimator_state")
    self._estimate = tf.function(self.estimator.estimate, jit_compile=jit_compile)

  def estimate(self, noise_seed: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor], list[tf.Tensor]]:
    """(meta-loss, meta-gradient, next flat state) from the current state: one estimator call,
    or, under a strategy, the mean over the replicas of theirs."""
    # Values, not variables: a compiled replica may not read a variable on another device.
    theta = [w.read_value() for w in self.groups.theta()]
    flat = [v.read_value() for v in self.state_variables]
    if self._strategy is None:
      meta_loss, grads, state = self._estimate(theta, self._pack(flat), noise_seed)
      return meta_loss, grads, tf.nest.flatten(state)

    def on_replica():
      replica = tf.distribute.get_replica_context().replica_id_in_sync_group
      state = self._pack([leaf[replica] for leaf in flat])
      meta_loss, grads, state = self._estimate(theta, state,
                                               tasks_lib.fold(noise_seed, replica))
      return meta_loss, grads, [leaf[None] for leaf in tf.nest.flatten(state)]

    meta_loss, grads, state = self._strategy.run(on_replica)
    mean = lambda value: self._strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
    # Every replica's (and every worker's) new task state, in replica order, on every worker:
    # the chief's checkpoint then holds all of it.
    return (mean(meta_loss), [mean(g) for g in grads],
            [self._strategy.gather(leaf, axis=0) for leaf in state])

  @tf.function
  def step(self, noise_seed: tf.Tensor) -> tuple[tf.Tensor, outer.OuterStep]:
    """One outer step: estimate, update the weights, carry the tasks on."""
    before = self._pack([v.read_value() for v in self.state_variables])
    meta_loss, grads, state = self.estimate(noise_seed)
    after = self._pack(state)
    self._learner.count_capped(tf.reduce_sum(after.unroll_state.nonfinite)
                               - tf.reduce_sum(before.unroll_state.nonfinite))
    result = self._learner.apply(meta_loss, grads)
    for variable, value in zip(self.state_variables, state):
      variable.assign(value)
    return meta_loss, result

  def _current(self):
    if self._strategy is not None:
      raise ValueError("Per-problem views of a replicated estimate are per replica; use "
                       "state_variables.")
    return self._pack([v.read_value() for v in self.state_variables])

  def unroll_params(self) -> list[tf.Tensor]:
    """Every problem's current parameters (leading problem axis)."""
    return list(self._current().unroll_state.params)

  def current_losses(self) -> tf.Tensor:
    """Every problem's training loss at its current parameters, on its next minibatch."""
    return self.unroll.losses_and_grads(self._current().unroll_state)[0]

  def restart(self, seed: tf.Tensor) -> None:
    """Fresh tasks from ``seed`` (and fresh PES accumulators)."""
    initial = self.estimator.init_state(self.unroll.init(seed), self.groups.theta())
    for variable, value in zip(self.state_variables, tf.nest.flatten(initial)):
      variable.assign(value)
