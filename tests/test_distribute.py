"""Mirrored meta-training on 2 logical CPUs: one outer step's estimate is the mean of what each
replica's share of tasks and noise gives on its own (run in a fresh process: the logical devices
must be set up before TensorFlow starts)."""

import subprocess
import sys
import textwrap

import numpy as np

from cli_helpers import ROOT

SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    from l2l import distribute, estimators, meta, outer, routing, tasks
    from problems import families

    distribute.use_logical_cpus(2)
    strategy = distribute.make_strategy("mirrored", 2)
    assert strategy.num_replicas_in_sync == 2
    for name in ("tbptt", "pes"):
      tf.random.set_seed(0)
      family = families.Quadratic(batch_size=4, num_dims=3)
      optimizer = meta.MetaOptimizer.from_preset("original")
      groups = routing.NetGroups(optimizer.nets, [("coordinatewise", [0])])
      groups.build(family.param_shapes())
      learner = outer.OuterLearner(groups.theta(), 1e-3)
      config = estimators.EstimatorConfig(name, 2, 1, 0.01, 5, tasks.ConstantHorizon(8))
      seed, noise_seed = tasks.as_seed(3), tasks.as_seed(4)
      run = estimators.FamilyEstimate(family, optimizer.nets, None, config, learner, seed, False,
                                      strategy)
      meta_loss, grads, state = run.estimate(noise_seed)
      flat = [v.numpy() for v in run.state_variables]
      single = estimators.FamilyEstimate(family, optimizer.nets, None, config, learner, seed,
                                         False)
      losses, sums = [], None
      for replica in range(2):
        for variable, leaves in zip(single.state_variables, flat):
          variable.assign(leaves[replica])
        loss, replica_grads, replica_state = single.estimate(tasks.fold(noise_seed, replica))
        for got, want in zip(replica_state, state):
          np.testing.assert_allclose(want[replica], got, rtol=1e-5, atol=1e-6)
        losses.append(float(loss))
        sums = replica_grads if sums is None else [a + b for a, b in zip(sums, replica_grads)]
      np.testing.assert_allclose(float(meta_loss), np.mean(losses), rtol=1e-5)
      for got, want in zip(grads, sums):
        np.testing.assert_allclose(got, want / 2, rtol=1e-4, atol=1e-7)
      assert not np.array_equal(flat[0][0], flat[0][1])  # Each replica has its own tasks.
      before = [w.numpy() for w in groups.theta()]
      run.step(noise_seed)
      assert max(np.abs(w.numpy() - b).max() for w, b in zip(groups.theta(), before)) > 0
      print(name, "ok")
""")


def test_mirrored_estimate_is_the_mean_of_the_replicas_estimates():
  result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  assert "tbptt ok" in result.stdout and "pes ok" in result.stdout


def _free_port() -> int:
  import socket
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_workers_end_where_one_process_over_the_same_tasks_ends(tmp_path):
  """train.py --strategy=multi_worker in 2 processes on localhost (TF_CONFIG) and --strategy=
  mirrored over 2 logical CPUs in one: the same checkpoint, tensor for tensor."""
  import json
  import os

  from cli_helpers import checkpoint_tensors, run

  args = ["train.py", "--problem=quadratic", "--estimator=pes", "--num_tasks=1", "--truncation=5",
          "--horizon=10", "--num_outer_steps=3", "--evaluation_period=3", "--nojit_compile",
          "--checkpoint_every=3", "--seed=1"]
  workers = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
    processes.append(subprocess.Popen(
        [sys.executable, *args, "--strategy=multi_worker", f"--save_path={tmp_path / 'cluster'}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  assert all(p.returncode == 0 for p in processes), outputs[0][-2000:] + outputs[1][-2000:]
  assert "saved to" in outputs[0] and "saved to" not in outputs[1]  # Only the chief writes.
  run(*args, "--strategy=mirrored", "--num_replicas=2", f"--save_path={tmp_path / 'one'}")
  cluster = checkpoint_tensors(tmp_path / "cluster" / "checkpoints")
  one = checkpoint_tensors(tmp_path / "one" / "checkpoints")
  assert cluster.keys() == one.keys() and any("learner" in k for k in one)
  for name, value in one.items():
    np.testing.assert_array_equal(cluster[name], value, err_msg=name)
  out = run("train.py", "--problem=quadratic", "--strategy=multi_worker", check=False)
  assert out.returncode != 0 and "--strategy=multi_worker reads the cluster from TF_CONFIG" in (
      out.stderr)


def test_stale_estimates_are_those_older_than_max_staleness_updates():
  from l2l import asynchronous
  assert asynchronous.fresh_enough(version=7, step=7, max_staleness=0)
  assert not asynchronous.fresh_enough(version=6, step=7, max_staleness=0)
  assert asynchronous.fresh_enough(version=4, step=7, max_staleness=3)
  assert not asynchronous.fresh_enough(version=3, step=7, max_staleness=3)


def test_parameter_server_training_survives_a_killed_worker_and_resumes(tmp_path):
  """train.py --strategy=parameter_server: a chief, 1 ps and 2 workers on localhost (TF_CONFIG).
  One worker is SIGKILLed mid-run and restarted: the chief still applies every step, the
  validation improves, estimates staler than --max_staleness=0 are dropped, and the lost one is
  counted; then the run resumes from its checkpoint, both workers serving it."""
  import json
  import os
  import re
  import signal
  import time

  args = ["train.py", "--problem=mnist8", "--strategy=parameter_server", "--estimator=es",
          "--num_tasks=2", "--truncation=5", "--horizon=20", "--num_steps=20",
          "--evaluation_period=15", "--evaluation_epochs=2", "--learning_rate=0.01",
          "--max_staleness=0", "--progress_seconds=0", "--checkpoint_every=15",
          f"--save_path={tmp_path}"]
  cluster = {"chief": [f"localhost:{_free_port()}"], "ps": [f"localhost:{_free_port()}"],
             "worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}

  def start(task_type, index, *extra, log=subprocess.DEVNULL):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": task_type, "index": index}}))
    return subprocess.Popen([sys.executable, *args, *extra], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)

  servers = [start("ps", 0), start("worker", 0), start("worker", 1)]
  try:
    log_path = tmp_path / "chief.log"
    with open(log_path, "w") as log:
      chief = start("chief", 0, "--num_outer_steps=45", log=log)
      deadline = time.time() + 240
      while "outer step 8/45" not in log_path.read_text() and time.time() < deadline:
        assert chief.poll() is None, log_path.read_text()[-3000:]
        time.sleep(0.05)
      servers[2].send_signal(signal.SIGKILL)
      servers[2].wait()
      servers[2] = start("worker", 1)  # Restarted: it rejoins.
      chief.wait(timeout=300)
    out = log_path.read_text()
    assert chief.returncode == 0, out[-3000:]
    counts = out.split("estimates: ")[1].split("\n")[0]
    applied, dropped = int(counts.split(" applied")[0]), int(counts.split(", ")[1].split()[0])
    lost = int(counts.split(", ")[2].split()[0])
    assert applied == 45 and dropped > 0 and lost >= 1, counts
    validation = [float(v) for v in re.findall(r"outer step \d+/45 .* validation (\S+)", out)]
    assert len(validation) == 3 and validation[-1] < validation[0] - 0.05, validation
    resumed = start("chief", 0, "--num_outer_steps=60", "--resume", log=subprocess.PIPE)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0 and "60 outer steps (from 45)" in out, out[-3000:]
    per_worker = out.split("returned per worker ")[1].split("\n")[0]
    assert per_worker.startswith("{0: ") and ", 1: " in per_worker, per_worker
  finally:
    for server in servers:
      server.kill()
