"""Running meta-training under ``tf.distribute`` strategies.

``mirrored``: one host, N devices (the GPUs, or N logical CPUs when there is no GPU: set them up
with ``use_logical_cpus`` before TensorFlow initialises its devices). Every replica estimates on
its own tasks (``l2l.estimators.FamilyEstimate``), the estimates are averaged, and the outer
learner applies the mean once; Sonnet's optimizers do not all-reduce by themselves, so the
reduction is explicit and the update runs in cross-replica context.

``multi_worker``: several processes (hosts), synchronous, ``MultiWorkerMirroredStrategy`` with the
cluster read from ``TF_CONFIG`` like every TensorFlow program; create it before anything else
touches TensorFlow. Every worker runs the same program: the replicas' task states are gathered on
every worker after each step (so all hold the same weights and the same state), and only the chief
writes checkpoints and the saved optimizer.

``parameter_server``: asynchronous, ``ParameterServerStrategy`` with the cluster (a chief, the
parameter servers, the workers) from ``TF_CONFIG``. The chief runs the training
(``l2l.asynchronous``); the servers and workers run ``serve_if_server``: a TensorFlow server
that executes what the chief schedules, until it is killed. A worker may die and restart at any
time; the chief and the parameter servers may not (resume from the last checkpoint).
"""

import contextlib
import os
import sys

from absl import logging
import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multi_worker", "parameter_server")
_TF_CONFIG_EXAMPLE = ('e.g. {"cluster": {"chief": ["host0:port"], "ps": ["host1:port"], '
                      '"worker": ["host2:port", "host3:port"]}, "task": {"type": "worker", '
                      '"index": 0}}')


def use_logical_cpus(count: int) -> None:
  """Splits the CPU into ``count`` logical devices, when there is no GPU to replicate over; call
  it before anything creates a tensor (TensorFlow fixes its devices then)."""
  if tf.config.list_physical_devices("GPU") or count <= 1:
    return
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count)
  except RuntimeError as e:
    raise RuntimeError(f"Cannot split the CPU into {count} devices after TensorFlow has "
                       "initialised them: call use_logical_cpus first.") from e


def make_strategy(name: str, num_replicas: int = 1) -> tf.distribute.Strategy | None:
  """The strategy named ``name`` ("none": None); "mirrored" over ``num_replicas`` GPUs, or
  logical CPUs (see ``use_logical_cpus``); "multi_worker" over the cluster of ``TF_CONFIG``."""
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}.")
  if name == "none":
    return None
  if name == "multi_worker":
    if "TF_CONFIG" not in os.environ:
      raise ValueError("--strategy=multi_worker reads the cluster from TF_CONFIG: set it in every "
                       "worker's environment, e.g. {\"cluster\": {\"worker\": [\"host1:port\", "
                       "\"host2:port\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}.")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "parameter_server":
    resolver = _parameter_server_cluster()
    if resolver.task_type != "chief":
      raise ValueError(f"This process is {resolver.task_type} {resolver.task_id} of the cluster: "
                       "call serve_if_server before make_strategy.")
    return tf.distribute.ParameterServerStrategy(resolver)
  gpus = tf.config.list_logical_devices("GPU")
  devices = gpus or tf.config.list_logical_devices("CPU")
  if len(devices) < num_replicas:
    raise ValueError(f"--num_replicas={num_replicas} needs as many devices; this machine has "
                     f"{len(devices)} ({'GPU' if gpus else 'CPU'}).")
  return tf.distribute.MirroredStrategy([d.name for d in devices[:num_replicas]])


def _parameter_server_cluster() -> tf.distribute.cluster_resolver.ClusterResolver:
  if "TF_CONFIG" not in os.environ:
    raise ValueError("--strategy=parameter_server reads the cluster from TF_CONFIG: set it in "
                     f"every process's environment, {_TF_CONFIG_EXAMPLE}.")
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  jobs = resolver.cluster_spec().jobs
  missing = [job for job in ("chief", "ps", "worker") if job not in jobs]
  if missing or resolver.task_type not in ("chief", "ps", "worker"):
    raise ValueError(f"--strategy=parameter_server needs a chief, parameter servers (ps) and "
                     f"workers in TF_CONFIG (missing: {missing or 'none'}; this task: "
                     f"{resolver.task_type!r}), {_TF_CONFIG_EXAMPLE}.")
  return resolver


def serve_if_server() -> bool:
  """In a parameter-server cluster (``TF_CONFIG``), a ps or worker process serves the chief
  until it is killed (and never returns); the chief gets False."""
  resolver = _parameter_server_cluster()
  if resolver.task_type == "chief":
    return False
  server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                task_index=resolver.task_id, protocol="grpc", start=True)
  server.join()
  return True


def exit_chief() -> None:
  """Ends a parameter-server chief's process once its work is written. TensorFlow's teardown
  (2.21) waits forever for a worker that died and did not come back, so the chief leaves
  without it."""
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(0)  # pylint: disable=protected-access


@contextlib.contextmanager
def worker_local(strategy: tf.distribute.Strategy | None):
  """Variables created inside (a task family's data) get a copy on every worker under a
  parameter server, where the workers' compiled estimates read them; elsewhere it does nothing.
  Build the families the workers train on inside it, and those the chief validates on outside."""
  if not is_parameter_server(strategy):
    yield
    return

  def per_worker(next_creator, **kwargs):
    return next_creator(per_worker_variable=True, **kwargs)

  with strategy.scope(), tf.variable_creator_scope(per_worker):
    yield


def is_parameter_server(strategy: tf.distribute.Strategy | None) -> bool:
  """Whether ``strategy`` trains asynchronously on parameter servers."""
  return isinstance(strategy, tf.distribute.ParameterServerStrategy)


def writes_files(strategy: tf.distribute.Strategy | None) -> bool:
  """Whether this process writes checkpoints and saved optimizers: the chief, or a lone process."""
  return strategy is None or strategy.extended.should_checkpoint
