"""Mirrored meta-training on 2 logical CPUs: one outer step's estimate is the mean of what each
replica's share of tasks and noise gives on its own (run in a fresh process: the logical devices
must be set up before TensorFlow starts)."""

import subprocess
import sys
import textwrap

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
