# meshhub: `make run` starts a demo hub, `make test` runs every test.
# Both set themselves up: a virtual environment in .venv with the Python
# packages, and (as root) the Debian packages the tests use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PORT   ?= 8080
DATA   ?= var/demo
AGENT_PORT ?= 9180

.PHONY: run test lint bench system-packages clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "meshhub needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/meshhub-portal demo --data $(DATA) --port $(PORT) --agent-port $(AGENT_PORT)

system-packages:
	@sh scripts/system-packages.sh

# PYTEST_ARGS narrows a local run (e.g. PYTEST_ARGS='tests/portal -x'); under CI=true it
# is ignored, so CI always runs every test. The tests run in parallel, one worker per core
# (pytest-xdist), a file's tests on one worker; PYTEST_WORKERS=0 runs them in this process.
# The tests that boot a whole node in QEMU (VM_TESTS) run after the others, on their own:
# without KVM the guest needs every core, which the workers would otherwise take from it.
# Then the radio lab's tests, in a Debian VM of their own (RADIO_VM_TESTS: this kind of
# host has no mac80211_hwsim; docs/lab.md, "Radios"), also one guest at a time.
# Every part always runs; make fails if any failed.
PYTEST_WORKERS ?= auto
VM_TESTS := tests/vm
RADIO_VM_TESTS := tests/lab/test_radio_in_vm.py
RUN_ARGS := $(if $(filter true 1 yes,$(CI)),,$(PYTEST_ARGS))
test: $(STAMP) system-packages
	$(BIN)/ruff check .
	$(BIN)/vulture
	$(BIN)/mypy
ifeq ($(strip $(RUN_ARGS)),)
	status=0; \
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile \
		$(addprefix --ignore=,$(VM_TESTS) $(RADIO_VM_TESTS)) || status=$$?; \
	$(BIN)/python -m pytest -n 0 $(VM_TESTS) || status=$$?; \
	$(BIN)/python -m pytest -n 0 $(RADIO_VM_TESTS) || status=$$?; \
	exit $$status
else
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(RUN_ARGS)
endif

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/vulture
	$(BIN)/mypy

# Every figure printed with its target and verdict; non-zero exit when one misses (bench/__main__.py).
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var build *.egg-info
