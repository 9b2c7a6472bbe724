"""train.py / evaluate.py end to end on small runs, as a user calls them."""

import json

import pytest

from cli_helpers import kill_after_first_checkpoint, kill_resume_and_compare, run


@pytest.fixture(scope="module")
def trained_quadratic(tmp_path_factory):
  path = tmp_path_factory.mktemp("quadratic")
  out = run("train.py", "--problem=quadratic", "--num_epochs=4", "--evaluation_period=2",
            "--evaluation_epochs=2", "--logging_period=2", f"--save_path={path}")
  assert "best optimizer (epoch 4, validation log10 mean final loss" in out.stdout
  return path


def test_train_writes_a_loadable_optimizer(trained_quadratic):
  config = json.loads((trained_quadratic / "config.json").read_text())
  assert config["nets"]["coordinatewise"]["net"] == "CoordinateWiseDeepLSTM"
  assert (trained_quadratic / "nets.index").exists()
  assert any((trained_quadratic / "logs").iterdir())  # TensorBoard events.


def test_evaluate_learned_and_baseline_on_the_same_problems(trained_quadratic, tmp_path):
  results = {}
  for optimizer in ("L2L", "Adam"):
    out_json = tmp_path / f"{optimizer}.json"
    run("evaluate.py", "--problem=quadratic", f"--optimizer={optimizer}",
        f"--path={trained_quadratic}", "--learning_rate=0.1", "--num_epochs=3",
        f"--output_json={out_json}", f"--plot={tmp_path / 'curve.png'}")
    results[optimizer] = json.loads(out_json.read_text())
  for r in results.values():
    assert len(r["mean_loss_curve"]) == 101 and len(r["final_losses"]) == 3
    assert r["log10_mean_final_loss"] == pytest.approx(
        __import__("math").log10(r["mean_final_loss"]))
    assert r["seconds_per_epoch"] > 0
  # Same held-out problems: the same loss before the first step.
  assert results["L2L"]["mean_loss_curve"][0] == pytest.approx(
      results["Adam"]["mean_loss_curve"][0], rel=1e-6)
  assert results["Adam"]["mean_loss_curve"][-1] < results["Adam"]["mean_loss_curve"][0]
  assert (tmp_path / "curve.png").stat().st_size > 1000


def test_bad_flags_are_rejected_with_the_allowed_values(tmp_path):
  out = run("evaluate.py", "--optimizer=Adagrad", check=False)
  assert out.returncode != 0 and "value should be one of <L2L|SGD|Adam|RMSProp|NAG|celo|general|nnadam-mnist>" in out.stderr
  out = run("train.py", "--num_steps=30", "--unroll_length=20", check=False)
  assert out.returncode != 0 and "--num_steps must be a multiple of --unroll_length" in out.stderr
  out = run("evaluate.py", "--optimizer=L2L", f"--path={tmp_path}", check=False)
  assert out.returncode != 0 and "No saved optimizer at" in out.stderr


def test_sinusoid_training_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
  """SIGKILL after the first checkpoint; --resume must end where an uninterrupted run ends."""
  import numpy as np
  import tensorflow as tf

  from problems import sinusoid_training

  args = ["train.py", "--problem=sinusoid", "--num_iterations=6000", "--logging_period=1",
          "--checkpoint_every=1000", "--seed=3", f"--save_path={tmp_path}"]
  state = tmp_path / sinusoid_training.CHECKPOINT_DIR / "checkpoint"
  kill_after_first_checkpoint(args, state)
  assert state.exists() and not (tmp_path / "config.json").exists()  # Killed mid-run.
  out = run(*args, "--resume").stdout
  resumed_from = int(out.split("(from ")[1].split(")")[0])
  assert 1000 <= resumed_from < 6000
  reference = sinusoid_training.train_sinusoid("reptile", 6000, 1, 5, 0.02, 0.1, seed=3,
                                               logging_period=6000)
  resumed = sinusoid_training.load_params(str(tmp_path))
  for a, b in zip(tf.nest.flatten(resumed), tf.nest.flatten(reference.params)):
    np.testing.assert_array_equal(a, b)


def test_meta_training_killed_with_sigkill_resumes_to_the_uninterrupted_state(tmp_path):
  """SIGKILL after a checkpoint; --resume must end in exactly the uninterrupted run's state."""
  from l2l import training

  args = ["train.py", "--problem=mnist", "--num_epochs=24", "--num_steps=10", "--unroll_length=5",
          "--evaluation_period=8", "--evaluation_epochs=2", "--checkpoint_every=4",
          "--learning_rate=0.01", "--seed=5"]
  expected = kill_resume_and_compare(args, tmp_path, training.CHECKPOINT_DIR, 4, 24)
  assert any("rng" in k for k in expected) and any("meta_optimizer" in k for k in expected)


def test_flag_combinations_and_missing_data_are_explained(tmp_path):
  out = run("train.py", "--problem=mnist", "--resume", check=False)
  assert out.returncode != 0 and "--checkpoint_every and --resume need --save_path" in out.stderr
  out = run("train.py", "--problem=quadratic", "--init_from=celo", "--preset=celo", check=False)
  assert out.returncode != 0 and "--init_from and --preset both choose the nets" in out.stderr
  out = run("train.py", "--problem=imagenet", check=False)
  assert out.returncode != 0 and (
      "--problem: unknown problem 'imagenet'; choose from quadratic, mnist," in out.stderr)
  out = run("train.py", "--problem=mnist", "--num_epochs=0", check=False)
  assert out.returncode != 0 and "--num_epochs=0: 0 is not a positive integer" in out.stderr
  out = run("evaluate.py", "--problem=mnist", "--optimizer=Adam", f"--data_dir={tmp_path}",
            check=False)
  assert out.returncode != 0 and "No MNIST test data in --data_dir=" in out.stderr
  out = run("train.py", "--problem=quadratic", "--resume", f"--save_path={tmp_path}", check=False)
  assert out.returncode != 0 and "resume: no checkpoint under" in out.stderr


def test_a_run_shorter_than_the_validation_period_validates_at_its_end_and_saves(tmp_path):
  out = run("train.py", "--problem=quadratic", "--num_epochs=3", "--evaluation_epochs=2",
            "--progress_seconds=0", f"--save_path={tmp_path}", quiet_env=False)
  saved = out.stdout.split("best optimizer (epoch ")[1]
  assert saved.startswith("3, validation log10 mean final loss ") and str(tmp_path) in saved
  assert (tmp_path / "config.json").exists() and (tmp_path / "nets.index").exists()
  # A progress line per epoch here (--progress_seconds=0), with the validation and an ETA.
  lines = [l for l in out.stderr.splitlines() if "training.py" in l and "ETA" in l]
  assert [l.split("] epoch ")[1].split()[0] for l in lines] == ["1/3", "2/3", "3/3"]
  assert "no validation yet" in lines[0] and "validation " in lines[2].split("skipped")[1]
  run("evaluate.py", "--problem=quadratic", f"--path={tmp_path}", "--num_epochs=1")
  # Only the project's own lines: no TensorFlow start-up, device or checkpoint noise.
  for noise in ("cuInit", "oneDNN", "InitializeLog", "cuda", "Sharding callback", "XLA"):
    assert noise not in out.stderr + out.stdout
  loud = run("train.py", "--problem=quadratic", "--num_epochs=1", "--tf_logs", quiet_env=False)
  assert "oneDNN" in loud.stderr


def _one_error_line(*args) -> str:
  out = run(*args, check=False)
  assert out.returncode == 1, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
  return lines[0]


def test_user_mistakes_after_flag_parsing_are_one_line_errors(tmp_path):
  assert "No saved optimizer at" in _one_error_line(
      "evaluate.py", "--optimizer=L2L", f"--path={tmp_path / 'missing'}")
  assert "resume: no checkpoint under" in _one_error_line(
      "train.py", "--resume", f"--save_path={tmp_path}")
  assert "CIFAR-10 needs --data_dir" in _one_error_line(
      "evaluate.py", "--problem=cifar", "--optimizer=Adam")
  assert "No MNIST test data in --data_dir=" in _one_error_line(
      "evaluate.py", "--problem=mnist", "--optimizer=Adam", f"--data_dir={tmp_path}")
  assert "need --path" in _one_error_line("evaluate.py", "--optimizer=L2L")
  (tmp_path / "config.json").write_text("{not json")
  assert "config.json is not valid JSON" in _one_error_line(
      "evaluate.py", "--optimizer=L2L", f"--path={tmp_path}")
  out = run("evaluate.py", "--optimizer=L2L", f"--path={tmp_path}", "--verbosity=1", check=False)
  assert out.returncode != 0 and "Traceback" in out.stderr  # Raised verbosity: the traceback.


def test_sinusoid_progress_comes_every_thousand_iterations_by_default():
  out = run("train.py", "--problem=sinusoid", "--num_iterations=2500")
  progress = [line.split("iteration ")[1].split()[0] for line in out.stderr.splitlines()
              if "mean meta cost" in line]
  assert progress == ["1000", "2000", "2500"]
  assert "trained reptile (seed) on sinusoid: 2500 iterations" in out.stdout


def test_small_problems_run_on_one_intra_op_thread():
  code = ("import cli, problems; cli.set_intra_op_threads(problems.intra_op_threads({!r})); "
          "import tensorflow as tf; print(tf.config.threading.get_intra_op_parallelism_threads())")
  threads = {name: run("-c", code.format(name)).stdout.split()[-1]
             for name in ("sinusoid", "quadratic", "mnist")}
  assert threads == {"sinusoid": "1", "quadratic": "1", "mnist": "0"}  # 0: one per core.
  out = run("train.py", "--intra_op_threads=0", check=False)
  assert out.returncode != 0 and "--intra_op_threads" in out.stderr


def test_an_unknown_validation_problem_is_one_line_error():
  out = run("train.py", "--problem=general", "--validation_problem=mlp-elu", check=False)
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1].startswith(
      "error: --validation_problem: unknown problem 'mlp-elu'; choose from")
