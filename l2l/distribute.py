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
"""

import os

import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multi_worker")


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
  gpus = tf.config.list_logical_devices("GPU")
  devices = gpus or tf.config.list_logical_devices("CPU")
  if len(devices) < num_replicas:
    raise ValueError(f"--num_replicas={num_replicas} needs as many devices; this machine has "
                     f"{len(devices)} ({'GPU' if gpus else 'CPU'}).")
  return tf.distribute.MirroredStrategy([d.name for d in devices[:num_replicas]])


def writes_files(strategy: tf.distribute.Strategy | None) -> bool:
  """Whether this process writes checkpoints and saved optimizers: the chief, or a lone process."""
  return strategy is None or strategy.extended.should_checkpoint
