# Every target sets itself up: .venv is created and the project installed into it when missing
# or when setup.py changed; otherwise nothing is reinstalled.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
RUN_DIR ?= runs/default

.PHONY: install train train-mnist train-sinusoid test bench clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

train: $(STAMP)
	$(PY) train.py --problem=quadratic --num_epochs=300 --learning_rate=0.01 --evaluation_period=100 \
	  --save_path=$(RUN_DIR)/quadratic
	$(PY) evaluate.py --problem=quadratic --optimizer=L2L --path=$(RUN_DIR)/quadratic --num_epochs=100 \
	  --output_json=$(RUN_DIR)/quadratic/eval_l2l.json --plot=$(RUN_DIR)/quadratic/l2l_curve.png
	$(PY) evaluate.py --problem=quadratic --optimizer=Adam --learning_rate=0.3 --num_epochs=100 \
	  --output_json=$(RUN_DIR)/quadratic/eval_adam.json

train-mnist: $(STAMP)
	$(PY) train.py --problem=mnist --preset=paper --num_epochs=600 --learning_rate=0.01 \
	  --evaluation_period=50 --evaluation_epochs=10 --checkpoint_every=50 --save_path=$(RUN_DIR)/mnist
	$(PY) evaluate.py --problem=mnist --optimizer=L2L --path=$(RUN_DIR)/mnist --num_epochs=100 \
	  --output_json=$(RUN_DIR)/mnist/eval_l2l.json
	$(PY) evaluate.py --problem=mnist --optimizer=Adam --learning_rate=0.03 --num_epochs=100 \
	  --output_json=$(RUN_DIR)/mnist/eval_adam.json
	$(PY) examples/train_mlp.py --optimizer_path=$(RUN_DIR)/mnist --init=paper --num_steps=100 \
	  --adam_learning_rate=0.03 --plot=$(RUN_DIR)/mnist/train_mlp.png

train-sinusoid: $(STAMP)
	$(PY) train.py --problem=sinusoid --algorithm=reptile --num_iterations=30000 --logging_period=5000 \
	  --save_path=$(RUN_DIR)/sinusoid
	$(PY) evaluate.py --problem=sinusoid --path=$(RUN_DIR)/sinusoid --output_json=$(RUN_DIR)/sinusoid/eval.json \
	  --plot=$(RUN_DIR)/sinusoid/demo.png

test: $(STAMP)
	$(PY) -m pytest -q tests

BENCH_SCRIPTS := $(filter-out bench/common.py bench/__init__.py bench/heldout_tasks.py,$(wildcard bench/*.py))

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	for script in $(BENCH_SCRIPTS); do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
