# robot_ctrl: two commands on a fresh machine.
#   make demo   - the Panda in MuJoCo through real ROS 2 nodes, headless; writes out/demo/
#   make test   - the test suite
# Both create .venv and install what they need on first run.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: demo test bench venv clean metaworld browser

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

# headless Chromium + ChromeDriver for the browser teleop tests (Debian packages)
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
	  echo "warning: could not install chromium + chromium-driver (Debian); the browser teleop tests will be skipped"; \
	fi

# byte-compile the package first: with PYTHONDONTWRITEBYTECODE set (CI images often set it) every
# node process the tests start would compile robot_ctrl from source again (~0.2 s each).
# Two parts, both always run: the tests that start no graph and time nothing (marked parallel:
# tests/conftest.py PARALLEL_FILES) on TEST_WORKERS pytest-xdist workers, one file per worker at a
# time and one torch thread each; then all the others alone, so that no graph's timing is measured
# beside a second test.
TEST_WORKERS ?= 2
test: $(STAMP) browser
	$(PY) -m compileall -q robot_ctrl >/dev/null
	@rc=0; \
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m parallel --durations=10 tests || rc=$$?; \
	$(PY) -m pytest -q -m "not parallel" --durations=20 tests || rc=$$?; \
	exit $$rc

bench: $(STAMP)
	$(VENV)/bin/robot-ctrl bench sim
	$(VENV)/bin/robot-ctrl bench loop
	$(VENV)/bin/robot-ctrl bench loop --lockstep
	$(VENV)/bin/robot-ctrl bench safety --mode effort
	$(VENV)/bin/robot-ctrl bench safety --mode velocity
	$(VENV)/bin/robot-ctrl bench policy

# Meta-World v3 pins mujoco==3.3.0 while the stack's simulator needs MuJoCo >= 4, so the
# Meta-World extra lives in its own venv: Meta-World, torch and the learning stack's
# dependencies, and robot_ctrl itself without its dependencies (the learning commands need
# neither the simulator nor ROS).
VENV_MW := .venv-mw
MW_TASKS ?= reach-v3 drawer-close-v3 button-press-topdown-v3
MW_EPISODES ?= 100

$(VENV_MW)/.installed: setup.py
	$(PYTHON) -m venv $(VENV_MW)
	$(VENV_MW)/bin/pip install --quiet --upgrade pip wheel "setuptools<80"
	$(VENV_MW)/bin/pip install --quiet torch==2.13.0
	$(VENV_MW)/bin/pip install --quiet "metaworld>=3.1,<4" gymnasium safetensors "zarr>=3" tqdm matplotlib pyyaml rich pytest
	$(VENV_MW)/bin/pip install --quiet --no-deps -e .
	touch $@

# CARP vs. the diffusion baseline on Meta-World tasks: scripted demonstrations, training, eval
metaworld: $(VENV_MW)/.installed
	$(VENV_MW)/bin/python -m pytest -q tests/test_metaworld.py
	for t in $(MW_TASKS); do \
	  $(VENV_MW)/bin/robot-ctrl collect --task metaworld:$$t --episodes $(MW_EPISODES) && \
	  for p in carp diffusion; do \
	    $(VENV_MW)/bin/robot-ctrl train --policy $$p --task metaworld:$$t && \
	    $(VENV_MW)/bin/robot-ctrl eval out/train/$${p}_metaworld_$$t/policy.safetensors \
	      --episodes 50 --out out/eval/$${p}_metaworld_$$t || exit 1; \
	  done; \
	done

clean:
	rm -rf $(VENV) $(VENV_MW) out build install log *.egg-info
