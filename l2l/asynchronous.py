"""Asynchronous meta-training: workers estimate, one learner applies, stale estimates are dropped.

Under ``tf.distribute.ParameterServerStrategy`` the optimizer's weights and the learner's step
counter live on the parameter servers. The chief (the coordinator) keeps every worker busy with
scheduled ES estimates (``l2l.estimators.fresh``: stateless, so a function the coordinator
re-runs after a worker failure gives the same estimate); each estimate reads the learner's step
(its *version*) and then the weights, so the weights it used are at least that fresh. The chief
fetches estimates in the order it scheduled them and applies each one whose staleness, the
updates applied since its version, is at most ``max_staleness``; older ones are dropped and
counted. A worker that dies costs its estimate in flight, which ``ClusterCoordinator`` runs again
on another worker (counted as lost: runs started minus estimates returned); a restarted worker
rejoins by itself. Estimate ``i`` takes its tasks and noise from ``fold(seed, 4, i)`` and family
``i mod F``; with several workers the order of updates depends on timing, so asynchronous runs
are not reproducible bit for bit (the synchronous strategies are).
"""

import collections
from typing import Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from l2l import outer
from l2l import tasks as tasks_lib
from l2l.estimators.fresh import FreshTaskEstimate


def fresh_enough(version: int, step: int, max_staleness: int) -> bool:
  """Whether an estimate made at learner step ``version`` may be applied at learner step
  ``step``: at most ``max_staleness`` updates were applied in between."""
  return step - version <= max_staleness


def _num_workers() -> int:
  """The worker tasks of the cluster this process is connected to."""
  return len({device.name.split("/device:")[0] for device in tf.config.list_logical_devices()
              if "/job:worker/" in device.name})


def _fetch(remote: tf.distribute.experimental.coordinator.RemoteValue):
  """The estimate's values, or None when the worker that holds them died before they were
  copied."""
  try:
    return remote.fetch()
  except (tf.errors.UnavailableError, tf.errors.CancelledError) as e:
    logging.warning("an estimate was lost with its worker: %s", str(e).split("\n")[0])
    return None


class AsyncUpdates:
  """``next_update()``: blocks until a fresh enough estimate is applied; ``finish()`` waits for
  the estimates in flight and logs the counts."""

  def __init__(self, strategy: tf.distribute.Strategy, estimates: Sequence[FreshTaskEstimate],
               learner: outer.OuterLearner, seed: tf.Tensor, max_staleness: int,
               in_flight_per_worker: int = 2):
    if max_staleness < 0:
      raise ValueError(f"max_staleness must be >= 0, got {max_staleness}.")
    self._coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    self._learner, self._seed, self.max_staleness = learner, seed, max_staleness
    with strategy.scope():
      # The next estimate's index (checkpointed, so a resumed run draws fresh tasks), and the
      # estimate runs started on workers (re-runs after a failure included).
      self.scheduled = tf.Variable(0, dtype=tf.int64, trainable=False, name="scheduled")
      self._attempts = tf.Variable(0, dtype=tf.int64, trainable=False, name="attempts")
    self._works = [tf.function(self._worker_function(e)) for e in estimates]
    self._apply = tf.function(self._apply_estimate)
    self._depth = in_flight_per_worker * _num_workers()
    self._queue = collections.deque()
    self._next_index = None
    self._attempts_at_start = None
    self.applied = self.dropped = self.returned = 0
    self.staleness: list[int] = []
    self.per_worker: collections.Counter = collections.Counter()

  def _worker_function(self, estimate: FreshTaskEstimate):
    def work(index):
      self._attempts.assign_add(1)
      version = self._learner.step.read_value()
      theta = [w.read_value() for w in estimate.groups.theta()]
      meta_loss, grads, capped = estimate.estimate(theta, tasks_lib.fold(self._seed, 4, index))
      worker = tf.distribute.coordinator.experimental_get_current_worker_index()
      return version, meta_loss, grads, capped, worker
    return work

  def _apply_estimate(self, meta_loss, grads, capped) -> outer.OuterStep:
    self._learner.count_capped(capped)
    return self._learner.apply(meta_loss, grads)

  def trace(self, theta: Sequence[tf.Variable]) -> None:
    """Creates the learner's slots (before a checkpoint restore fills them)."""
    self._apply.get_concrete_function(tf.TensorSpec([], tf.float32),
                                      [tf.TensorSpec(w.shape, w.dtype) for w in theta],
                                      tf.TensorSpec([], tf.int32))

  def _schedule(self) -> None:
    if self._next_index is None:  # After a restore.
      self._next_index = int(self.scheduled.numpy())
      self._attempts_at_start = int(self._attempts.numpy())
    index = self._next_index
    self._next_index += 1
    self.scheduled.assign(self._next_index)
    work = self._works[index % len(self._works)]
    self._queue.append(self._coordinator.schedule(work, args=(tf.constant(index, tf.int64),)))

  def next_update(self) -> tuple[tf.Tensor, outer.OuterStep, int]:
    """(meta-loss, the learner's step result, staleness) of the next applied estimate."""
    while True:
      while len(self._queue) < self._depth:
        self._schedule()
      fetched = _fetch(self._queue.popleft())
      if fetched is None:  # Its worker died after computing it: lost.
        continue
      version, meta_loss, grads, capped, worker = fetched
      self.returned += 1
      self.per_worker[int(worker)] += 1
      step = int(self._learner.step.numpy())
      if fresh_enough(int(version), step, self.max_staleness):
        result = self._apply(tf.constant(meta_loss), [tf.constant(g) for g in grads],
                             tf.constant(capped))
        self.applied += 1
        self.staleness.append(step - int(version))
        return meta_loss, result, step - int(version)
      self.dropped += 1

  def finish(self) -> dict:
    """Waits for the estimates in flight (not applied); returns and logs the counts."""
    self._coordinator.join()
    while self._queue:
      self.returned += _fetch(self._queue.popleft()) is not None
    started = int(self._attempts.numpy()) - (self._attempts_at_start or 0)
    counts = {"applied": self.applied, "dropped_stale": self.dropped,
              "lost": started - self.returned,
              "mean_staleness": float(np.mean(self.staleness)) if self.staleness else 0.0,
              "per_worker": dict(sorted(self.per_worker.items()))}
    logging.info("estimates: %d applied, %d dropped as staler than %d updates, %d lost to "
                 "worker failures (run again); mean staleness %.2f; returned per worker %s",
                 counts["applied"], counts["dropped_stale"], self.max_staleness, counts["lost"],
                 counts["mean_staleness"], counts["per_worker"])
    return counts
