"""Meta-training over task families end to end: train.py's family flags, kill and resume, errors,
and a short PES run that learns."""

import numpy as np
import tensorflow as tf

from l2l import estimators
from l2l import family_training
from l2l import meta
from l2l import tasks
from problems import families
from cli_helpers import kill_resume_and_compare, run

FAMILY_ARGS = ["train.py", "--problem=quadratic,sinusoid", "--nojit_compile", "--estimator=pes", "--num_tasks=2",
               "--num_particles=2", "--truncation=5", "--horizon=loguniform:5:30",
               "--augment=reparam", "--num_outer_steps=40", "--evaluation_period=20",
               "--evaluation_epochs=2", "--num_steps=20", "--checkpoint_every=8", "--seed=3",
               "--learning_rate=0.003"]


def test_pes_training_killed_with_sigkill_resumes_to_the_uninterrupted_state(tmp_path):
  """Tasks, step counters, horizons, PES accumulators, Adam slots: all exactly as if never killed."""
  expected = kill_resume_and_compare(FAMILY_ARGS, tmp_path, family_training.CHECKPOINT_DIR, 8, 40)
  assert any("learner" in k and "/m/" in k for k in expected)  # Adam slots are in it.
  assert sum("tasks" in k for k in expected) > 20  # Both families' task state and PES sums.


def test_family_flags_are_checked_with_one_line_errors(tmp_path):
  for flag, message in [
      ("--horizon=loguniform:300:200", "--horizon: Bad horizon 'loguniform:300:200'"),
      ("--problem=quadratic,imagenet", "--problem: unknown problem 'imagenet'"),
      ("--estimator=reinforce", "value should be one of <tbptt|es|pes>")]:
    out = run("train.py", "--num_outer_steps=1", flag, check=False)
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_smoke_pes_on_quadratics_improves_the_lstm():
  """40 PES steps on 10-d quadratics: the validation loss after 100 steps falls well below the
  untrained LSTM's (the full comparison with TBPTT and tuned Adam is in the README)."""
  family = families.Quadratic(batch_size=16)
  optimizer = meta.MetaOptimizer.from_preset("original")
  config = estimators.EstimatorConfig("pes", num_tasks=4, num_particles=2, sigma=0.01,
                                      truncation=10, horizon=tasks.ConstantHorizon(50))
  result = family_training.meta_train_families(
      optimizer, [family], family, config, 60, learning_rate=3e-3, evaluation_period=30,
      evaluation_tasks=4, evaluation_steps=100, seed=0)
  first, last = (h["validation_log10_loss"] for h in result.history)
  untrained = family_training.validation_runner(
      family, meta.MetaOptimizer.from_preset("original"), None, 4, 100, tasks.fold(
          tasks.as_seed(0), 2, 0), True)()
  assert result.nonfinite == 0
  assert last < np.log10(np.mean(untrained)) - 0.3, (first, last)


def test_validation_runs_a_loaded_optimizer_with_its_saved_weights(tmp_path):
  family = families.Quadratic(batch_size=4, num_dims=3)
  seed = tasks.as_seed(0)
  tf.random.set_seed(1)
  saved = meta.MetaOptimizer.from_preset("original")
  expected = family_training.validation_runner(family, saved, None, 2, 10, seed, False)()
  saved.save(str(tmp_path))
  tf.random.set_seed(2)  # Other initial weights, which the loaded ones must replace.
  loaded = meta.MetaOptimizer.load(str(tmp_path))
  np.testing.assert_array_equal(
      family_training.validation_runner(family, loaded, None, 2, 10, seed, False)(), expected)
  other = family_training.validation_runner(
      family, meta.MetaOptimizer.from_preset("original"), None, 2, 10, seed, False)()
  assert np.abs(other - expected).max() > 1e-6


def test_the_validation_score_is_the_geometric_mean_over_families():
  np.testing.assert_allclose(family_training.validation_score([np.array([2.0, 4.0])]), 3.0)
  np.testing.assert_allclose(
      family_training.validation_score([np.array([0.01]), np.array([100.0, 100.0])]), 1.0)
  assert np.isnan(family_training.validation_score([np.array([np.nan]), np.array([1.0])]))
  assert family_training.validation_score([np.array([np.inf]), np.array([1.0])]) == np.inf
