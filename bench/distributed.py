"""Synchronous multi-worker meta-training on this machine: throughput and scaling efficiency.

Setting: PES, the "original" LSTM preset, 4 tasks of the 64-32-10 ReLU MLP on 8×8 MNIST per worker,
one antithetic pair per task, truncation 20, horizon 200, XLA. Every worker is a separate process,
restricted to one thread (so that 2 workers use the 2 cores and 4 oversubscribe them), in a
``MultiWorkerMirroredStrategy`` cluster on loopback ports (``TF_CONFIG``), exactly as
``train.py --strategy=multi_worker`` runs; the one-process row runs the same without a strategy.
Each run takes 10 outer steps to compile and warm up, then times ``STEPS`` outer steps. An
*estimate* is one worker's estimate over its own tasks; scaling efficiency is the estimates per
second of N workers over N times the one-process rate.

Run: ``.venv/bin/python bench/distributed.py`` (writes bench/results/distributed.json).
"""

import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WARMUP, STEPS = 10, 40


def worker(strategy_name: str) -> None:
  """One process: single-threaded TF, the strategy, WARMUP + STEPS outer steps; prints JSON."""
  import cli  # pylint: disable=import-outside-toplevel
  cli.quiet_tensorflow()
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
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
  print_table(rows, ["run", "workers", "outer_steps_per_s", "estimates_per_s", "efficiency"])
  path = write_results("distributed", rows, cpu_cores=os.cpu_count(), cpu_model=cpu_model(),
                       setting="PES, 4 tasks x 1 pair per worker, 64-32-10 ReLU MLP on 8x8 MNIST, "
                               f"truncation 20, original LSTM; {STEPS} timed outer steps after "
                               f"{WARMUP}; one thread per worker")
  print(f"wrote {path}")


if __name__ == "__main__":
  if len(sys.argv) > 1 and sys.argv[1].startswith("--worker="):
    worker(sys.argv[1].split("=", 1)[1])
  else:
    main()
