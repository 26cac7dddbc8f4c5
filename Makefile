# Every target that needs the virtualenv creates it first, so a fresh clone
# needs nothing but `make run` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_STATE ?= .hubrt/demo

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job: the flagship driver through its demo scenario -- state, a
# restart of each kind, state after -- on a fresh embedded store, then the
# devices and datastore read back from disk by separate commands.
run: $(STAMP)
	rm -rf $(DEMO_STATE)
	$(VENV)/bin/hubrt run drivers/virtual-dimmer --script drivers/virtual-dimmer/demo.yml --state $(DEMO_STATE)
	$(VENV)/bin/hubrt devices --state $(DEMO_STATE)
	$(VENV)/bin/hubrt store show virtual-dimmer --state $(DEMO_STATE)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q --lua both

# The Lua test comparison needs the hub tooling's interpreter, lua5.3, and the instruction counts
# valgrind (Debian packages).
bench: $(STAMP)
	@command -v lua5.3 >/dev/null || (apt-get update -qq && apt-get install -y -qq lua5.3) >/dev/null 2>&1 \
		|| echo "note: lua5.3 could not be installed; the Lua test comparison will say so"
	$(PY) bench/run.py
	@command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null 2>&1 \
		|| echo "note: valgrind could not be installed; instructions will not be counted"
	$(PY) bench/instructions.py

clean:
	rm -rf $(VENV) .hubrt .pytest_cache .hypothesis
