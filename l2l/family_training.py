"""Meta-training a learned optimizer over task families, with any estimator and the outer learner.

One *outer step* takes one estimate on one family (a mixture takes its families in turn, each
keeping its own tasks): ``num_tasks`` tasks run ``truncation`` steps from where they were (each
resets at its own horizon), the estimator (``tbptt``, ``es`` or ``pes``) turns that into a
meta-gradient, and the ``OuterLearner`` applies it. Every ``evaluation_period`` outer steps and
after the last one, the optimizer (unperturbed) trains ``evaluation_tasks`` fixed validation tasks
of every validation family for ``evaluation_steps`` steps; the optimizer with the best score
(``validation_score``: the geometric mean over families of the mean final loss) is saved with
``MetaOptimizer.save``.

Everything random comes from ``seed``: the nets' initial weights through TF's global seed, the
rest from stateless seeds derived from it (tasks, minibatches, noise of outer step s), and the
checkpoint holds everything that changes (nets, Adam slots, every task's
parameters, optimizer state, seed, step counter and horizon, the PES accumulators, counters), so a
run killed at any point and resumed from its last checkpoint ends exactly where an uninterrupted
run ends.
"""

import contextlib
import dataclasses
import math
import os
import time
from typing import Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from l2l import asynchronous as async_lib
from l2l import checkpoint
from l2l import distribute
from l2l import meta
from l2l import outer
from l2l import routing
from l2l import tasks as tasks_lib
from l2l import unroll as unroll_lib
from l2l.estimators.family import EstimatorConfig, FamilyEstimate
from l2l.estimators.fresh import FreshTaskEstimate

CHECKPOINT_DIR = "checkpoints"


def validation_runner(family: tasks_lib.TaskFamily, optimizer: meta.MetaOptimizer,
                      net_assignments: routing.NetAssignments | None, num_tasks: int,
                      num_steps: int, seed: tf.Tensor, jit_compile: bool):
  """``run() -> [num_tasks]`` final losses of fixed tasks trained ``num_steps`` steps by the
  optimizer's current weights."""
  groups = routing.assign_nets(family.param_names(), list(optimizer.nets), net_assignments)
  net_groups = routing.NetGroups(optimizer.nets, groups)
  run_unroll = unroll_lib.Unroll(family, net_groups, tasks_lib.ConstantHorizon(num_steps + 1),
                                 num_tasks)
  optimizer.check_restored()  # A loaded optimizer's weights, now that its nets are built.
  start = run_unroll.init(seed)

  @tf.function(jit_compile=jit_compile)
  def final_loss(theta: list[tf.Tensor]) -> tf.Tensor:
    return run_unroll(theta, start, num_steps).final_loss

  # Values, not variables: on a parameter server the weights live on another machine.
  return lambda: final_loss([w.read_value() for w in net_groups.theta()])


def validation_score(final_losses: Sequence[np.ndarray]) -> float:
  """The geometric mean over validation families of each one's mean final loss (the mean final
  loss itself for one family): families whose losses differ by orders of magnitude count alike.
  NaN or Inf when one is not finite or not positive."""
  means = np.array([float(np.mean(losses)) for losses in final_losses])
  if not np.all(np.isfinite(means)) or np.any(means <= 0):
    return math.nan if np.any(np.isnan(means)) else math.inf
  return float(np.exp(np.mean(np.log(means))))


@dataclasses.dataclass
class FamilyTrainResult:
  optimizer: meta.MetaOptimizer
  best_log10_loss: float  # Best validation log10 mean final loss (nan: none finite).
  best_step: int  # The outer step of the saved optimizer.
  steps_per_second: float
  inner_steps_per_second: float  # Inner steps × problems per second.
  start_step: int  # > 0 when resumed.
  nonfinite: int  # Problems capped / updates skipped (see outer.OuterLearner).
  history: list[dict]
  # Asynchronous runs (l2l.asynchronous): estimates applied, dropped as stale, lost, per worker.
  estimates: dict | None = None


def meta_train_families(
    optimizer: meta.MetaOptimizer, families: Sequence[tasks_lib.TaskFamily],
    validation_families: tasks_lib.TaskFamily | Sequence[tasks_lib.TaskFamily],
    config: EstimatorConfig, num_outer_steps: int,
    learning_rate: float = 1e-3, weight_decay: float = 0.0, clip_norm: float | None = None,
    nonfinite: str = "cap", net_assignments: routing.NetAssignments | None = None,
    evaluation_period: int = 100, evaluation_tasks: int = 8, evaluation_steps: int = 100,
    save_path: str | None = None, checkpoint_every: int | None = None, resume: bool = False,
    seed: int = 0, jit_compile: bool = True, progress_seconds: float = 10.0,
    strategy: tf.distribute.Strategy | None = None, max_staleness: int = 4,
    burn_in: int | None = None) -> FamilyTrainResult:
  """Meta-trains ``optimizer`` on ``families``; see the module docstring. Under a ``strategy``
  (``l2l.distribute``) every replica runs ``config.num_tasks`` tasks of its own; under a
  ``ParameterServerStrategy`` the workers run ES estimates on fresh tasks asynchronously
  (``l2l.asynchronous``: ``max_staleness``, and ``burn_in``, the most steps a fresh task is trained
  before its truncation, default the longest horizon)."""
  if (checkpoint_every or resume) and not save_path:
    raise ValueError("checkpoint_every and resume need a save_path to keep checkpoints in.")
  if num_outer_steps < 1:
    raise ValueError(f"num_outer_steps must be positive, got {num_outer_steps}.")
  writes = distribute.writes_files(strategy)  # Only the chief of a cluster writes.
  base_seed = tasks_lib.as_seed(seed)
  tf.random.set_seed(seed)  # The nets' initial weights, drawn when the first family builds them.
  asynchronous = distribute.is_parameter_server(strategy)
  if asynchronous and config.estimator != "es":
    raise ValueError("Asynchronous workers run stateless ES estimates (a re-run after a failure "
                     f"must give the same estimate): use the es estimator, not {config.estimator}.")
  # On a parameter server the nets and the learner's counters live on the servers.
  with strategy.scope() if asynchronous else contextlib.nullcontext():
    probe = routing.NetGroups(optimizer.nets, routing.assign_nets(  # Builds the nets.
        families[0].param_names(), list(optimizer.nets), net_assignments))
    probe.build(families[0].param_shapes())
    optimizer.check_restored()
    learner = outer.OuterLearner(probe.theta(), learning_rate, weight_decay, clip_norm, nonfinite)
  if asynchronous:
    # Without XLA: a compiled estimate may not read the weights on the servers, nor the workers'
    # copies of the data (TensorFlow 2.21: "Duplicate variable passed to XLA cluster").
    runs = [FreshTaskEstimate(family, optimizer.nets, net_assignments, config.num_tasks,
                              config.num_particles, config.sigma, config.truncation,
                              config.horizon, burn_in or tasks_lib.longest(config.horizon),
                              learner.cap_losses, jit_compile=False) for family in families]
    updates = async_lib.AsyncUpdates(strategy, runs, learner, base_seed, max_staleness)
  else:
    runs = [FamilyEstimate(family, optimizer.nets, net_assignments, config, learner,
                           tasks_lib.fold(base_seed, 1, index), jit_compile, strategy)
            for index, family in enumerate(families)]
  if isinstance(validation_families, tasks_lib.TaskFamily):
    validation_families = [validation_families]
  validators = [validation_runner(family, optimizer, net_assignments, evaluation_tasks,
                                  evaluation_steps, tasks_lib.fold(base_seed, 2, index),
                                  jit_compile)
                for index, family in enumerate(validation_families)]
  best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best")
  best_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_step")
  manager = None
  if checkpoint_every or resume:
    # Creates the Adam slots, so that a restore fills them all.
    if asynchronous:
      updates.trace(learner.weights)
    else:
      for run in runs:
        run.step.get_concrete_function(tf.TensorSpec([2], tf.int64))
    state = dict(nets=optimizer.nets, learner=learner, best=best, best_step=best_step,
                 tasks=updates.scheduled if asynchronous else [r.state_variables for r in runs])
    manager = checkpoint.resumable(
        os.path.join(save_path, CHECKPOINT_DIR), state, resume,
        f"families {[f.name for f in families]}, estimator {config.estimator}")
    if resume:
      logging.info("resumed from %s at outer step %d", manager.latest_checkpoint,
                   int(learner.step))
  start_step = int(learner.step)
  history, start_time, last_line = [], time.perf_counter(), -math.inf
  timed_steps, timed_seconds = 0, 0.0
  for step in range(start_step, num_outer_steps):
    step_start = time.perf_counter()
    if asynchronous:
      meta_loss, result, _ = updates.next_update()
    else:
      meta_loss, result = runs[step % len(runs)].step(tasks_lib.fold(base_seed, 3, step))
    meta_loss = float(meta_loss)
    if step >= start_step + len(runs):  # Each family's first call compiles.
      timed_steps += 1
      timed_seconds += time.perf_counter() - step_start
    entry = {"step": step + 1, "meta_loss": meta_loss, "grad_norm": float(result.grad_norm),
             "applied": bool(result.applied), "nonfinite": int(learner.nonfinite)}
    if (step + 1) % evaluation_period == 0 or step + 1 == num_outer_steps:
      score = validation_score([validate().numpy() for validate in validators])
      entry["validation_log10_loss"] = math.log10(score) if score > 0 else math.nan
      if score < float(best):
        best.assign(score)
        best_step.assign(step + 1)
        if save_path and writes:
          optimizer.save(save_path)
      history.append(entry)
    now = time.perf_counter()
    if now - last_line >= progress_seconds or step + 1 == num_outer_steps or (
        "validation_log10_loss" in entry):
      last_line = now
      rate = (now - start_time) / (step + 1 - start_step)
      logging.info("outer step %d/%d  meta-loss %.4g  grad norm %.3g  non-finite %d  %s  "
                   "%.3f s/step  ETA %.0f s", step + 1, num_outer_steps, meta_loss,
                   entry["grad_norm"], entry["nonfinite"],
                   f"validation {entry['validation_log10_loss']:.3f}"
                   if "validation_log10_loss" in entry else "", rate,
                   rate * (num_outer_steps - step - 1))
    if manager and writes and checkpoint_every and (step + 1) % checkpoint_every == 0:
      manager.save(checkpoint_number=step + 1)
  estimates = updates.finish() if asynchronous else None
  if manager and writes and checkpoint_every and int(learner.step) % checkpoint_every:
    manager.save(checkpoint_number=int(learner.step))
  replicas = strategy.num_replicas_in_sync if strategy and not asynchronous else 1
  copies = 1 if config.estimator == "tbptt" else 2 * config.num_particles
  problems_per_step = copies * config.num_tasks * config.truncation * replicas
  steps_per_second = timed_steps / timed_seconds if timed_seconds else math.nan
  best_value = float(best)
  return FamilyTrainResult(
      optimizer, math.log10(best_value) if 0 < best_value < math.inf else math.nan,
      int(best_step), steps_per_second, steps_per_second * problems_per_step, start_step,
      int(learner.nonfinite), history, estimates)
