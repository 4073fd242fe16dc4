# The two commands of the README:  `make demo`  and  `make test`.
# Both create the project venv (.venv) on first use; later runs install nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# torch first and alone, from the pinned CPU wheel: a later resolver run then keeps it and
# never reaches for CUDA wheels (../shared/ENVIRONMENT.md).
# Then the ROS 2 wheels, and our messages (msg/) built and installed into the venv.
$(STAMP): $(CONSTRAINTS) requirements/*.txt setup.py package.xml CMakeLists.txt msg/*.msg scripts/build_msgs.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c $(CONSTRAINTS) torch
	$(PIP) install -c $(CONSTRAINTS) -r requirements/base.txt -r requirements/dev.txt -r requirements/ros.txt
	$(PIP) install --no-build-isolation --no-deps --config-settings editable_mode=compat -e .
	bash scripts/build_msgs.sh
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dense-descriptor demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check dense_descriptor_ros test benchmarks launch

test: lint
	$(PY) -m pytest -q -m "not slow" test

bench: $(STAMP)
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
