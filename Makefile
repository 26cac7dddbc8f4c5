# Every target that needs the virtualenv creates it first, so a fresh clone
# needs nothing but `make run` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
STATE  ?= .hubrt

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job: the seed's datastore example, run as a one-driver hub on the
# embedded default store, then the persisted result read back from disk.
run: $(STAMP)
	$(VENV)/bin/hubrt lua drivers/examples/seed_datastore.lua --state $(STATE)
	$(VENV)/bin/hubrt store show seed_datastore --state $(STATE)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(STATE) .pytest_cache .hypothesis
