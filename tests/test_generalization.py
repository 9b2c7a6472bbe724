"""The held-out suite's measures (bench/generalization.py) and a short smoke run of it."""

import math

import numpy as np
import pytest

from bench import generalization, heldout_tasks


def test_smooth_is_a_trailing_mean():
  np.testing.assert_allclose(generalization.smooth(np.array([4.0, 2, 6, 0]), 2), [4, 3, 4, 3])


def test_speedup_counts_the_steps_the_reference_needs():
  reference = np.array([5.0, 4, 3, 2, 1, 1, 1, 1])
  assert generalization.speedup(2.5, reference, 2, 1) == 2.0  # Reached at step 4 of 8: 4 / 2.
  assert generalization.speedup(4.5, reference, 4, 1) == 0.5  # Step 2, against 4 steps.
  assert generalization.speedup(0.5, reference, 2, 1) == math.inf  # Never.
  # Smoothed over 2 steps (5, 4.5, 3.5, 2.5, 1.5, …) the reference reaches 2.2 a step later.
  assert generalization.speedup(2.2, reference, 1, 1) == 4.0
  assert generalization.speedup(2.2, reference, 1, 2) == 5.0


@pytest.mark.parametrize("values, expected", [([1, 2, 3, 4], 2.5), ([8, 1, 7, 2, 6, 3, 5, 4], 4.5),
                                              ([1, 2, 3, 4, 100], (0.75 * 2 + 3 + 0.75 * 4) / 2.5)])
def test_interquartile_mean(values, expected):
  assert generalization.interquartile_mean(values) == pytest.approx(expected)


def test_suite_smoke_run_on_one_task():
  """20 steps of logistic regression: every Adam rate and two shipped optimizers, summarised."""
  task = next(t for t in heldout_tasks.TASKS if t.name == "logistic")
  runs = [generalization.run_task(task, 0, {"nnadam-mnist": "nnadam-mnist", "general": "general"},
                                  20)]
  assert sorted(runs[0]["adam"]) == sorted(generalization.ADAM_GRID)
  assert len(generalization.ADAM_GRID) == 11 and generalization.ADAM_GRID[0] == 1e-5
  curves = {lr: r["curve"] for lr, r in runs[0]["adam"].items()}
  assert all(c[0] == curves[1e-3][0] for c in curves.values())  # Same start, same batches.
  assert curves[1e-2][-5:].mean() < curves[1e-5][-5:].mean() < curves[1e-5][0]
  row = generalization.summarise_task(task, runs)
  assert row["adam_lr"] in (0.01, 0.0316, 0.1) and row["steps"] == 20
  for name in ("nnadam-mnist", "general"):  # Measured: final 0.547 and 1.47, Adam 1e-3 1.79.
    entry = row["learned"][name]
    assert entry["final"] < row["initial_loss"] and not entry["diverged"], name
    assert entry["beats_1e-3"] and 0 < entry["speedup"] <= generalization.SPEEDUP_CAP, name
  assert len(row["curves"]["Adam tuned"]) == 20
  summary = generalization.summarise([row])
  assert summary["nnadam-mnist"]["wins_vs_adam_1e-3"] == summary["general"]["wins_vs_adam_1e-3"] == 1.0
