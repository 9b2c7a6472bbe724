"""train.py / evaluate.py end to end on small runs, as a user calls them."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, check=True):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)
  if check and result.returncode != 0:
    raise AssertionError(result.stdout + result.stderr)
  return result


@pytest.fixture(scope="module")
def trained_quadratic(tmp_path_factory):
  path = tmp_path_factory.mktemp("quadratic")
  out = run("train.py", "--problem=quadratic", "--num_epochs=4", "--evaluation_period=2",
            "--evaluation_epochs=2", "--logging_period=2", f"--save_path={path}")
  assert "best optimizer saved" in out.stdout
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
  assert out.returncode != 0 and "value should be one of <L2L|SGD|Adam|RMSProp|NAG>" in out.stderr
  out = run("train.py", "--num_steps=30", "--unroll_length=20", check=False)
  assert out.returncode != 0 and "--num_steps must be a multiple of --unroll_length" in out.stderr
  out = run("evaluate.py", "--optimizer=L2L", f"--path={tmp_path}", check=False)
  assert out.returncode != 0 and "No saved optimizer at" in out.stderr
