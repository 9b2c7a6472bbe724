"""Synchronous multi-worker meta-training on this machine: throughput and scaling efficiency.

Setting: PES, the "original" LSTM preset, 4 tasks of the 64-32-10 ReLU MLP on 8×8 MNIST per worker,
one antithetic pair per task, truncation 20, horizon 200, XLA. Every worker is a separate process,
restricted to one thread (so that 2 workers use the 2 cores and 4 oversubscribe them), in a
``MultiWorkerMirroredStrategy`` cluster on loopback ports (``TF_CONFIG``), exactly as
``train.py --strategy=multi_worker`` runs; the one-process row runs the same without a strategy.
Each run takes 10 outer steps to compile and warm up, then times ``STEPS`` outer steps. An
*estimate* is one worker's estimate over its own tasks; scaling efficiency is the estimates per
second of N workers over N times the one-process rate.

Asynchronous rows (``train.py --strategy=parameter_server``): a chief, one parameter server and
N single-threaded worker processes; the workers run stateless ES estimates (4 fresh tasks, one
pair each, burn-in up to the horizon, then a truncation of 20; ``l2l.estimators.fresh``) and
the chief applies each (no staleness bound here, so none is dropped). Their reference is the
same estimate run back to back in one single-threaded process; efficiency is the estimates per
second returned to the chief over N times that rate. The chief and the parameter server share
the 2 cores with the workers.

Run: ``.venv/bin/python bench/distributed.py`` (writes bench/results/distributed.json).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WARMUP, STEPS = 10, 40


def _single_threaded():
  import cli  # pylint: disable=import-outside-toplevel
  cli.quiet_tensorflow()
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  return tf


def worker(strategy_name: str) -> None:
  """One process: single-threaded TF, the strategy, WARMUP + STEPS outer steps; prints JSON."""
  tf = _single_threaded()
  # pylint: disable=import-outside-toplevel
  from l2l import distribute, estimators, meta, outer, routing, tasks
  from problems import families

  strategy = distribute.make_strategy(strategy_name)
  tf.random.set_seed(0)
  family = families.mnist((32,), "relu", image_size=8, init_stddev=None)
  optimizer = meta.MetaOptimizer.from_preset("original")
  groups = routing.NetGroups(optimizer.nets, [("coordinatewise", [0, 1, 2, 3])])
  groups.build(family.param_shapes())
  learner = outer.OuterLearner(groups.theta(), 1e-4)
  config = estimators.EstimatorConfig("pes", 4, 1, 0.01, 20, tasks.ConstantHorizon(200))
  run = estimators.FamilyEstimate(family, optimizer.nets, None, config, learner,
                                  tasks.as_seed(1), True, strategy)
  for step in range(WARMUP):
    run.step(tasks.fold(tasks.as_seed(2), step))[0].numpy()
  start = time.perf_counter()
  for step in range(WARMUP, WARMUP + STEPS):
    run.step(tasks.fold(tasks.as_seed(2), step))[0].numpy()
  seconds = time.perf_counter() - start
  print(json.dumps({"steps_per_second": STEPS / seconds}))


def _fresh_setting(tf, strategy=None):
  """The asynchronous rows' estimate: ES on 4 fresh tasks of the MLP, burn-in up to 200 steps;
  under a parameter server, the data on every worker and the weights on the server."""
  # pylint: disable=import-outside-toplevel
  from l2l import distribute, meta, outer, routing, tasks
  from l2l.estimators.fresh import FreshTaskEstimate
  from problems import families
  tf.random.set_seed(0)
  with distribute.worker_local(strategy):
    family = families.mnist((32,), "relu", image_size=8, init_stddev=None)
  with strategy.scope() if strategy else contextlib.nullcontext():
    optimizer = meta.MetaOptimizer.from_preset("original")
    groups = routing.NetGroups(optimizer.nets, [("coordinatewise", [0, 1, 2, 3])])
    groups.build(family.param_shapes())
    learner = outer.OuterLearner(groups.theta(), 1e-4)
  estimate = FreshTaskEstimate(family, optimizer.nets, None, 4, 1, 0.01, 20,
                               tasks.ConstantHorizon(200), 200, learner.cap_losses,
                               jit_compile=strategy is None)
  return estimate, learner


def fresh_single() -> None:
  """One process, single-threaded: the fresh-task ES estimate back to back; prints JSON."""
  tf = _single_threaded()
  from l2l import tasks  # pylint: disable=import-outside-toplevel
  estimate, _ = _fresh_setting(tf)
  theta = [w.read_value() for w in estimate.groups.theta()]
  for k in range(WARMUP):
    estimate.estimate(theta, tasks.fold(tasks.as_seed(4), k))[0].numpy()
  start = time.perf_counter()
  for k in range(WARMUP, WARMUP + STEPS):
    estimate.estimate(theta, tasks.fold(tasks.as_seed(4), k))[0].numpy()
  print(json.dumps({"estimates_per_second": STEPS / (time.perf_counter() - start)}))


def serve() -> None:
  """A single-threaded parameter server or worker of the TF_CONFIG cluster."""
  _single_threaded()
  from l2l import distribute  # pylint: disable=import-outside-toplevel
  distribute.serve_if_server()


def chief() -> None:
  """The asynchronous chief: WARMUP + STEPS applied estimates; prints JSON."""
  tf = _single_threaded()
  # pylint: disable=import-outside-toplevel
  from l2l import asynchronous, distribute, tasks
  strategy = distribute.make_strategy("parameter_server")
  estimate, learner = _fresh_setting(tf, strategy)
  updates = asynchronous.AsyncUpdates(strategy, [estimate], learner, tasks.as_seed(4),
                                      max_staleness=10 ** 6)
  for _ in range(WARMUP):
    updates.next_update()
  returned, start = updates.returned, time.perf_counter()
  for _ in range(STEPS):
    updates.next_update()
  seconds = time.perf_counter() - start
  print(json.dumps({"steps_per_second": STEPS / seconds,
                    "estimates_per_second": (updates.returned - returned) / seconds,
                    "mean_staleness": float(sum(updates.staleness[WARMUP:]) / STEPS)}))
  distribute.exit_chief()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def measure(num_workers: int) -> float:
  """Outer steps per second of a run with ``num_workers`` processes (0: one, no strategy)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  if not num_workers:
    out = subprocess.run([sys.executable, __file__, "--worker=none"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["steps_per_second"]
  addresses = [f"localhost:{_free_port()}" for _ in range(num_workers)]
  processes = []
  for index in range(num_workers):
    config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    processes.append(subprocess.Popen(
        [sys.executable, __file__, "--worker=multi_worker"], cwd=ROOT,
        env=dict(env, TF_CONFIG=json.dumps(config)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  rates = []
  for process in processes:
    out, err = process.communicate(timeout=1800)
    if process.returncode:
      raise RuntimeError(err[-2000:])
    rates.append(json.loads(out.strip().splitlines()[-1])["steps_per_second"])
  return min(rates)  # Synchronous: the slowest worker's rate is the cluster's.


def measure_asynchronous(num_workers: int) -> dict:
  """The chief's numbers with ``num_workers`` worker processes (0: the one-process reference)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  if not num_workers:
    out = subprocess.run([sys.executable, __file__, "--fresh"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])
  cluster = {"chief": [f"localhost:{_free_port()}"], "ps": [f"localhost:{_free_port()}"],
             "worker": [f"localhost:{_free_port()}" for _ in range(num_workers)]}

  def start(task_type, index, mode):
    config = {"cluster": cluster, "task": {"type": task_type, "index": index}}
    return subprocess.Popen([sys.executable, __file__, mode], cwd=ROOT,
                            env=dict(env, TF_CONFIG=json.dumps(config)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

  servers = [start("ps", 0, "--serve")] + [start("worker", i, "--serve")
                                           for i in range(num_workers)]
  try:
    coordinator = start("chief", 0, "--chief")
    out, err = coordinator.communicate(timeout=1800)
    if coordinator.returncode:
      raise RuntimeError(err[-2000:])
    return json.loads(out.strip().splitlines()[-1])
  finally:
    for server in servers:
      server.kill()


def main():
  from bench.common import cpu_model, print_table, write_results  # pylint: disable=import-outside-toplevel
  single = measure(0)
  rows = [{"run": "one process, no strategy", "workers": 1, "outer_steps_per_s": single,
           "estimates_per_s": single, "efficiency": 1.0}]
  for workers in (1, 2, 4):
    rate = measure(workers)
    rows.append({"run": f"multi_worker, {workers} process{'es' if workers > 1 else ''}",
                 "workers": workers, "outer_steps_per_s": rate,
                 "estimates_per_s": rate * workers, "efficiency": rate / single})
  fresh = measure_asynchronous(0)["estimates_per_second"]
  rows.append({"run": "fresh-task ES estimates, one process", "workers": 1,
               "outer_steps_per_s": fresh, "estimates_per_s": fresh, "efficiency": 1.0})
  for workers in (1, 2, 4):
    result = measure_asynchronous(workers)
    rows.append({"run": f"parameter_server, {workers} worker{'s' if workers > 1 else ''}",
                 "workers": workers, "outer_steps_per_s": result["steps_per_second"],
                 "estimates_per_s": result["estimates_per_second"],
                 "efficiency": result["estimates_per_second"] / (workers * fresh),
                 "mean_staleness": result["mean_staleness"]})
  print_table(rows, ["run", "workers", "outer_steps_per_s", "estimates_per_s", "efficiency",
                     "mean_staleness"])
  path = write_results("distributed", rows, cpu_cores=os.cpu_count(), cpu_model=cpu_model(),
                       setting="PES, 4 tasks x 1 pair per worker, 64-32-10 ReLU MLP on 8x8 MNIST, "
                               f"truncation 20, original LSTM; {STEPS} timed outer steps after "
                               f"{WARMUP}; one thread per worker; parameter_server rows: ES on "
                               "fresh tasks with burn-in up to 200 steps, no staleness bound")
  print(f"wrote {path}")


if __name__ == "__main__":
  if len(sys.argv) > 1 and sys.argv[1].startswith("--worker="):
    worker(sys.argv[1].split("=", 1)[1])
  elif len(sys.argv) > 1:
    {"--fresh": fresh_single, "--serve": serve, "--chief": chief}[sys.argv[1]]()
  else:
    main()
