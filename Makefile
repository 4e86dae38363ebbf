# robot_ctrl: two commands on a fresh machine.
#   make demo   - the Panda in MuJoCo through real ROS 2 nodes, headless; writes out/demo/
#   make test   - the test suite
# Both create .venv and install what they need on first run.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): setup.py setup.cfg package.xml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel "setuptools<80"
	# torch first, pinned: the CPU build on disk (a plain `torch` pulls a multi-GB CUDA build)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[ros,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/robot-ctrl demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(VENV)/bin/robot-ctrl bench sim
	$(VENV)/bin/robot-ctrl bench loop
	$(VENV)/bin/robot-ctrl bench loop --lockstep
	$(VENV)/bin/robot-ctrl bench safety --mode effort
	$(VENV)/bin/robot-ctrl bench safety --mode velocity

clean:
	rm -rf $(VENV) out build install log *.egg-info
