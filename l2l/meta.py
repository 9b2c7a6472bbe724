"""MetaOptimizer: learning to learn by gradient descent by gradient descent, in TF2 + Sonnet 2.

``MetaOptimizer(**net_config)`` owns optimizer nets (see ``l2l.networks``). ``meta_loss(make_loss,
len_unroll)`` prepares a problem and returns callables in the TF2 form of the original's graph ops:

=============  =============================================================================
``loss()``     runs one truncated unroll of ``len_unroll`` optimizer steps from the carried optimizee
               values and RNN states and returns the meta-loss: the sum of the optimizee loss at
               t = 0 … len_unroll. Differentiable with respect to the nets' variables; call it inside
               your own ``tf.function`` and ``tf.GradientTape``. It also stores where the unroll ended.
``update()``   carries the end of the last ``loss()`` over (truncated BPTT): optimizee values and RNN
               states become the next unroll's start.
``reset()``    draws a fresh problem: re-initialises the optimizee's variables (trainable ones and
               constants) and zeroes the RNN states.
``fx``         variable: the optimizee loss at the end of the last unroll.
``x``          variables: the carried optimizee values, one per trainable variable of the problem.
``constants``  the problem's non-trainable variables (data, targets, batch-norm statistics).
=============  =============================================================================

``meta_minimize`` adds a ready meta-training ``step()``: ``loss()`` under a tape and one Adam step on
the nets' weights. A training loop is then::

    step, update, reset, fx, x = optimizer.meta_minimize(make_loss, len_unroll=20)
    train = tf.function(lambda: (step(), update())[0])
    for epoch in range(num_epochs):
      reset()
      for _ in range(num_steps // 20):
        meta_loss = train()

Every optimizee variable assigned to one net goes through one net call per step: its gradient rows
are concatenated, and the update rows split back. The unroll is a ``tf.while_loop``, so the graph
does not grow with ``len_unroll``.
"""

import collections
import copy
import dataclasses
import os
from typing import Any, Callable, Sequence

import sonnet as snt
import tensorflow as tf

from l2l import checkpoint
from l2l import estimators
from l2l import networks
from l2l import outer
from l2l import pretrained
from l2l import routing
from l2l import tasks
from l2l import variables as variables_lib

NetConfig = dict[str, dict[str, Any]]

# Named net configurations; each entry says where it comes from.
PRESETS: dict[str, NetConfig] = {
    # The original code's MetaOptimizer default (also its MNIST / CIFAR config).
    "original": {"coordinatewise": {
        "net": "CoordinateWiseDeepLSTM",
        "net_options": {"layers": [20, 20], "preprocess_name": "LogAndSign",
                        "preprocess_options": {"k": 5}, "scale": 0.01}}},
    # The original code's quadratic config: no preprocessing, no output scaling.
    "quadratic": {"coordinatewise": {
        "net": "CoordinateWiseDeepLSTM", "net_options": {"layers": [20, 20]}}},
    # The paper's description: log & sign preprocessing with p = 10, outputs scaled by 0.1.
    "paper": {"coordinatewise": {
        "net": "CoordinateWiseDeepLSTM",
        "net_options": {"layers": [20, 20], "preprocess_name": "LogAndSign",
                        "preprocess_options": {"k": 10}, "scale": 0.1}}},
    # Not from the paper: Adam with step size and momentum set by one small LSTM per net
    # (networks.NNAdam); about Adam's cost per step, for large models.
    "nnadam": {"nnadam": {"net": "NNAdam", "net_options": {"learning_rate": 0.03, "layers": [20]}}},
    # Celo's architecture (l2l.nets.celo) with fresh weights, to meta-train (its published
    # weights are the shipped optimizer "celo"); num_steps: the planned horizon.
    "celo": {"celo": {"net": "Celo", "net_options": {"num_steps": 1000}}},
    # The same architecture starting as Adam relative to each tensor's scale (Celo's "adam"
    # start): where l2l's general optimizer starts its meta-training.
    "celo-adam": {"celo": {"net": "Celo", "net_options": {"num_steps": 1000, "start": "adam"}}},
}
CHECKPOINT_PREFIX = "nets"


@dataclasses.dataclass(frozen=True)
class MetaLoss:
  """What ``meta_loss`` returns; unpacks as the original's ``loss, update, reset, fx, x, constants``."""
  loss: Callable[[], tf.Tensor]
  update: Callable[[], None]
  reset: Callable[[], None]
  fx: tf.Variable
  x: list[tf.Variable]
  constants: list[tf.Variable]
  fx_history: tf.Variable  # The optimizee loss at t = 0 … len_unroll of the last unroll.
  carried: tf.Module  # Every carried variable (optimizee values, RNN states): checkpoint it.

  def __iter__(self):
    return iter((self.loss, self.update, self.reset, self.fx, self.x, self.constants))


@dataclasses.dataclass(frozen=True)
class MetaStep:
  """What ``meta_minimize`` returns; unpacks as the original's ``step, update, reset, fx, x``."""
  step: Callable[[], tf.Tensor]
  update: Callable[[], None]
  reset: Callable[[], None]
  fx: tf.Variable
  x: list[tf.Variable]
  meta_loss: MetaLoss | None  # None with ES / PES.
  optimizer: snt.Optimizer  # Adam on the nets' weights; checkpoint it to resume training.
  grad_norm: tf.Variable  # Global norm of the last step's meta-gradient, before clipping.
  applied: tf.Variable  # Whether the last step updated the nets (False: non-finite, skipped).

  def __iter__(self):
    return iter((self.step, self.update, self.reset, self.fx, self.x))


class _Unroll(tf.Module):
  """One problem under one MetaOptimizer: its recorded variables and the carried unroll state."""

  def __init__(self, nets: dict[str, networks.Network], make_loss: Callable[[], tf.Tensor],
               len_unroll: int, net_assignments, second_derivatives: bool):
    super().__init__(name="unroll")
    if not isinstance(len_unroll, int) or len_unroll < 1:
      raise ValueError(f"len_unroll must be a positive int, got {len_unroll!r}.")
    self._make_loss = make_loss
    self._len_unroll = len_unroll
    self._second_derivatives = second_derivatives
    self._record = variables_lib.record_variables(make_loss)
    trainable = self._record.trainable
    if not trainable:
      raise ValueError("make_loss creates no trainable variables: there is nothing to optimize. "
                       + variables_lib.OUTSIDE_HINT)
    names = (self._record.trainable_names() if net_assignments is not None
             else [v.name for v in trainable])
    self._groups = routing.NetGroups(nets, routing.assign_nets(names, list(nets),
                                                               net_assignments))
    self.x = variables_lib.state_variables([v.read_value() for v in trainable], "x")
    self._x_next = variables_lib.state_variables([v.read_value() for v in trainable], "x_next")
    self.fx = tf.Variable(0.0, trainable=False, name="fx")
    self.fx_history = tf.Variable(tf.zeros([len_unroll + 1]), trainable=False, name="fx_history")
    # Builds the nets' variables eagerly, before any tracing.
    self._initial_states = self._groups.build([v.shape for v in trainable])
    self._states = variables_lib.state_variables(self._initial_states, "state")
    self._states_next = variables_lib.state_variables(self._initial_states, "state_next")

  def _fx(self, x: Sequence[tf.Tensor]) -> tf.Tensor:
    return tf.cast(variables_lib.loss_with_custom_variables(self._make_loss, self._record, x),
                   tf.float32)

  def _step(self, x: list[tf.Tensor], states: list[Any]):
    """One optimizer step: returns (loss at x, x after the step, next states)."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(x)
      fx = self._fx(x)
    grads = tape.gradient(fx, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    loss_input = fx
    if not self._second_derivatives:
      grads = [tf.stop_gradient(g) for g in grads]
      loss_input = tf.stop_gradient(fx)
    updates, states_next = self._groups.updates(x, grads, loss_input, states)
    x_next = [xi + tf.cast(u, xi.dtype) for xi, u in zip(x, updates)]
    return fx, x_next, states_next

  def loss(self) -> tf.Tensor:
    x = [v.read_value() for v in self.x]
    states = tf.nest.map_structure(lambda v: v.read_value(), self._states)
    history = tf.TensorArray(tf.float32, size=self._len_unroll + 1)

    def body(t, x, states, history):
      fx, x, states = self._step(x, states)
      return t + 1, x, states, history.write(t, fx)

    _, x, states, history = tf.while_loop(
        lambda t, *_: t < self._len_unroll, body, (tf.constant(0), x, states, history),
        maximum_iterations=self._len_unroll)  # Static, so the unroll also compiles with XLA.
    fx_final = self._fx(x)
    history = history.write(self._len_unroll, fx_final).stack()
    for var, value in zip(self._x_next, x):
      var.assign(value)
    tf.nest.map_structure(lambda var, value: var.assign(value), self._states_next, states)
    self.fx.assign(fx_final)
    self.fx_history.assign(history)
    return tf.reduce_sum(history)

  def update(self) -> None:
    for var, value in zip(self.x, self._x_next):
      var.assign(value)
    tf.nest.map_structure(lambda var, value: var.assign(value), self._states, self._states_next)

  def reset(self) -> None:
    variables_lib.reinitialize(self._make_loss, self._record, trainable_targets=self.x)
    tf.nest.map_structure(lambda var, value: var.assign(value), self._states,
                          self._initial_states)

  def as_meta_loss(self) -> MetaLoss:
    return MetaLoss(self.loss, self.update, self.reset, self.fx, self.x, self._record.constants,
                    self.fx_history, self)


class MetaOptimizer(snt.Module):
  """Learning-to-learn optimizer: nets that map optimizee gradients to updates, meta-trainable."""

  def __init__(self, name: str = "meta_optimizer", **net_config):
    """Args:
      name: module name.
      **net_config: ``{key: {"net": class name, "net_options": {...}, "net_path": ...}}``, one entry
        per optimizer net (see ``l2l.networks.factory``). Default: ``PRESETS["original"]``, one
        coordinatewise LSTM (20, 20) with LogAndSign(k=5) preprocessing and output scale 0.01.
    """
    super().__init__(name=name)
    snt.allow_empty_variables(self)  # Hand-designed nets (Sgd, Adam) have no weights.
    self.config: NetConfig = copy.deepcopy(net_config or PRESETS["original"])
    for key, spec in self.config.items():
      unknown = set(spec) - {"net", "net_options", "net_path"}
      if "net" not in spec or unknown:
        raise ValueError(f"Net config {key!r} must be {{'net': name, 'net_options': {{...}}, "
                         f"'net_path': optional}}, got {spec}.")
    self.nets = {key: networks.factory(spec["net"], spec.get("net_options", {}),
                                       spec.get("net_path"))
                 for key, spec in self.config.items()}
    self._restored_from = None  # Where restore() last loaded weights from.
    self._saved_counts: collections.Counter = collections.Counter()  # Saved weights per net.

  @classmethod
  def from_preset(cls, preset: str, net_keys: Sequence[str] | None = None) -> "MetaOptimizer":
    """A MetaOptimizer with the named net configuration of ``PRESETS``.

    ``net_keys``: several nets, each configured as the preset's one (e.g. ``("conv", "fc")``);
    None keeps the preset's own single key.
    """
    if preset not in PRESETS:
      raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    config = PRESETS[preset]
    if net_keys:
      (spec,) = config.values()
      config = {key: spec for key in net_keys}
    return cls(**config)

  @snt.no_name_scope  # The problem's variables keep the names make_loss gives them.
  def meta_loss(self, make_loss: Callable[[], tf.Tensor], len_unroll: int,
                net_assignments: Sequence[tuple[str, Sequence[str]]] | None = None,
                model_path: str | None = None, second_derivatives: bool = False) -> MetaLoss:
    """Prepares ``make_loss`` for unrolled optimization; see the module docstring.

    Call it eagerly (it records the problem's variables and builds the nets).

    Args:
      make_loss: builds the problem's variables and modules and returns its scalar loss.
      len_unroll: optimizer steps per ``loss()`` call (the truncation length).
      net_assignments: ``[(net_key, [variable names])]``; needed when there are several nets.
      model_path: a directory written by ``save`` to load the nets' weights from.
      second_derivatives: differentiate through the optimizee gradients (the paper drops them).
    """
    unroll = _Unroll(self.nets, make_loss, len_unroll, net_assignments, second_derivatives)
    self.check_restored()
    if model_path is not None:
      self.restore(model_path)
    return unroll.as_meta_loss()

  @snt.no_name_scope
  def meta_minimize(self, make_loss: Callable[[], tf.Tensor], len_unroll: int,
                    learning_rate: float = 0.01, clip_norm: float | None = None,
                    estimator: str = "tbptt", num_particles: int = 8, sigma: float = 0.01,
                    seed: int = 0, **kwargs) -> MetaStep:
    """``meta_loss`` plus a ``step()`` that takes one Adam step on the nets' weights.

    ``step()`` returns the meta-loss; follow it with ``update()``. It records the meta-gradient's
    global norm in ``grad_norm``, clips the gradient to global norm ``clip_norm`` when given, and
    skips the Adam step (``applied`` False) when the meta-loss or the meta-gradient is not finite,
    so that one diverging problem cannot write NaN into the nets. ``kwargs`` go to ``meta_loss``.

    ``estimator``: "tbptt" (the paper's truncated backpropagation, the default), or "es" / "pes"
    (antithetic ES over each truncation / persistent ES: ``num_particles`` antithetic pairs of
    copies of the problem, perturbations of standard deviation ``sigma``, noise from ``seed`` and
    the step count). With ES / PES, ``meta_loss`` is None (there is no differentiable loss),
    ``fx`` is the mean loss of the copies at the end of the unroll and ``x`` the values of the
    first copy; ``reset()`` draws a fresh problem through make_loss's own initialisers.
    """
    if clip_norm is not None and not clip_norm > 0:
      raise ValueError(f"clip_norm must be positive (or None for no clipping), got {clip_norm}.")
    if estimator not in estimators.ESTIMATORS:
      raise ValueError(f"Unknown estimator {estimator!r}; choose one of "
                       f"{estimators.ESTIMATORS}.")
    if estimator != "tbptt":
      return self._meta_minimize_by_es(make_loss, len_unroll, learning_rate, clip_norm,
                                       estimator, num_particles, sigma, seed, **kwargs)
    ops = self.meta_loss(make_loss, len_unroll, **kwargs)
    optimizer = snt.optimizers.Adam(learning_rate)
    weights = self.trainable_variables
    grad_norm = tf.Variable(0.0, trainable=False, name="grad_norm")
    applied = tf.Variable(True, trainable=False, name="applied")

    def apply(grads: list[tf.Tensor]) -> tf.Tensor:
      if clip_norm is not None:
        grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=grad_norm)
      optimizer.apply(grads, weights)
      return tf.constant(True)

    def step() -> tf.Tensor:
      with tf.GradientTape() as tape:
        loss = ops.loss()
      if weights:
        grads = tape.gradient(loss, weights)
        grad_norm.assign(tf.linalg.global_norm(grads))
        finite = tf.math.is_finite(loss) & tf.math.is_finite(grad_norm)
        applied.assign(tf.cond(finite, lambda: apply(grads), lambda: tf.constant(False)))
      return loss

    return MetaStep(step, ops.update, ops.reset, ops.fx, ops.x, ops, optimizer, grad_norm, applied)

  def _meta_minimize_by_es(self, make_loss, len_unroll, learning_rate, clip_norm, estimator,
                           num_particles, sigma, seed, net_assignments=None, model_path=None,
                           second_derivatives=False) -> MetaStep:
    if second_derivatives:
      raise ValueError(f"second_derivatives applies to estimator='tbptt'; {estimator} does not "
                       "differentiate the unroll.")
    family = tasks.from_make_loss(make_loss)
    config = estimators.EstimatorConfig(estimator, 1, num_particles, sigma, len_unroll,
                                        tasks.ConstantHorizon(2**31 - 1))
    names = family.param_names() if net_assignments is not None else [
        f"param_{i}" for i in range(len(family.param_shapes()))]
    groups = routing.NetGroups(self.nets, routing.assign_nets(names, list(self.nets),
                                                             net_assignments))
    groups.build(family.param_shapes())
    self.check_restored()
    if model_path is not None:
      self.restore(model_path)
    learner = outer.OuterLearner(groups.theta(), learning_rate, clip_norm=clip_norm,
                                 nonfinite="skip")
    run = estimators.FamilyEstimate(family, self.nets, net_assignments, config, learner,
                                    tasks.as_seed(seed), jit_compile=False)
    start = variables_lib.state_variables([v.read_value() for v in run.state_variables], "start")
    fx = tf.Variable(0.0, trainable=False, name="fx")
    x = variables_lib.state_variables([v[0] for v in run.unroll_params()], "x")
    grad_norm = tf.Variable(0.0, trainable=False, name="grad_norm")
    applied = tf.Variable(True, trainable=False, name="applied")
    draws = tf.Variable(0, dtype=tf.int64, trainable=False, name="draws")

    def step() -> tf.Tensor:
      for variable, value in zip(run.state_variables, start):
        variable.assign(value)
      meta_loss, result = run.step(tasks.fold(tasks.as_seed(seed), learner.step))
      grad_norm.assign(result.grad_norm)
      applied.assign(result.applied)
      fx.assign(tf.reduce_mean(run.current_losses()))
      return meta_loss

    def update() -> None:
      for variable, value in zip(start, run.state_variables):
        variable.assign(value)
      for variable, value in zip(x, run.unroll_params()):
        variable.assign(value[0])

    def reset() -> None:
      draws.assign_add(1)
      run.restart(tasks.fold(tasks.as_seed(seed), 1, draws))
      update()

    return MetaStep(step, update, reset, fx, x, None, learner.optimizer, grad_norm, applied)

  def save(self, path: str) -> None:
    """Writes ``path/config.json`` (the net config) and ``path/nets.*`` (a tf.train.Checkpoint).

    Raises FloatingPointError, writing nothing, when a net weight is not finite.
    """
    broken = [v.name for v in self.variables if not tf.reduce_all(tf.math.is_finite(v))]
    if broken:
      raise FloatingPointError(f"Not saving the optimizer to {path!r}: weights {broken} are NaN "
                               "or Inf.")
    config = {key: {k: v for k, v in spec.items() if k != "net_path"}
              for key, spec in self.config.items()}
    checkpoint.save(path, CHECKPOINT_PREFIX, {"nets": self.nets}, {"nets": config})

  def restore(self, path: str) -> None:
    """Loads net weights written by ``save``: now for the nets already built, the others when
    ``check_restored`` runs after they are built.

    Every tensor is read and checked here, so a corrupt checkpoint, NaN weights or weights of nets
    the configuration does not name fail now, with the path (``checkpoint.LoadError``).
    """
    weights = checkpoint.read_weights(path, CHECKPOINT_PREFIX, "optimizer")
    self._saved_counts = collections.Counter(name.split("/")[1] for name in weights)
    unknown = sorted(set(self._saved_counts) - set(self.nets))
    if unknown:
      raise checkpoint.LoadError(
          f"The saved optimizer at {path!r} holds weights of nets {unknown}, which its "
          f"{checkpoint.CONFIG_FILE} does not configure (it names {sorted(self.nets)}).")
    self._restored_from = path
    self.check_restored()

  def check_restored(self) -> None:
    """Reads the weights ``restore`` found into every net built so far, and checks that each of
    them gets exactly its saved weights (names, count and shapes); call it after building nets
    (``meta_loss`` and ``LearnedOptimizer`` do). Does nothing for an optimizer not restored."""
    if self._restored_from is None:
      return
    built = {key: net for key, net in self.nets.items() if networks.weights(net)}
    try:
      for key, net in built.items():
        if len(networks.weights(net)) != self._saved_counts[key]:
          raise ValueError(f"net {key!r} has {len(networks.weights(net))} weights, the "
                           f"checkpoint {self._saved_counts[key]}")
      status = tf.train.Checkpoint(nets=built).read(
          os.path.join(self._restored_from, CHECKPOINT_PREFIX))
      status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
      raise checkpoint.LoadError(
          f"The saved optimizer at {self._restored_from!r} does not match the net configuration "
          f"in its {checkpoint.CONFIG_FILE} ({self.config}): {str(e).splitlines()[0]}") from e

  @classmethod
  def load(cls, path: str, num_steps: int | None = None) -> "MetaOptimizer":
    """A MetaOptimizer rebuilt from ``path/config.json`` with the weights of ``path/nets``;
    ``path`` may also name an optimizer shipped with l2l (``l2l.pretrained.SHIPPED``).

    ``num_steps`` replaces the planned number of steps of the nets that have one (Celo).
    """
    path = pretrained.resolve(path)
    config = checkpoint.read_config(path, "optimizer")
    if not isinstance(config.get("nets"), dict):
      raise checkpoint.LoadError(
          f"{os.path.join(path, checkpoint.CONFIG_FILE)} has no \"nets\" entry: it was not "
          "written by MetaOptimizer.save / train.py.")
    if num_steps is not None:
      for spec in config["nets"].values():
        if "num_steps" in spec.get("net_options", {}):
          spec["net_options"]["num_steps"] = int(num_steps)
    try:
      optimizer = cls(**config["nets"])
    except (TypeError, ValueError) as e:
      raise checkpoint.LoadError(
          f"{os.path.join(path, checkpoint.CONFIG_FILE)} does not configure valid nets: "
          f"{e}") from e
    optimizer.restore(path)
    return optimizer
