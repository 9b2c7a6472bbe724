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
  """One family's tasks, estimator and estimator state (in variables, for checkpoints)."""

  def __init__(self, family: tasks_lib.TaskFamily, nets: dict[str, networks.Network],
               net_assignments: routing.NetAssignments | None, config: EstimatorConfig,
               learner: outer.OuterLearner, seed: tf.Tensor, jit_compile: bool):
    super().__init__(name=f"family_{family.name}")
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
    self.state_variables = variables_lib.state_variables(tf.nest.flatten(initial),
                                                         "estimator_state")
    self._pack = lambda flat: tf.nest.pack_sequence_as(initial, flat)
    self._estimate = tf.function(self.estimator.estimate, jit_compile=jit_compile)

  @tf.function
  def step(self, noise_seed: tf.Tensor) -> tuple[tf.Tensor, outer.OuterStep]:
    """One outer step: estimate, update the weights, carry the tasks on."""
    state = self._pack([v.read_value() for v in self.state_variables])
    meta_loss, grads, state = self._estimate(self.groups.theta(), state, noise_seed)
    result = self._learner.apply(meta_loss, grads)
    for variable, value in zip(self.state_variables, tf.nest.flatten(state)):
      variable.assign(value)
    return meta_loss, result

  def _current(self):
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
