# Two entry points for a fresh machine with Python 3.11 and make:
#   make plan STACK=prod-tp16   set up .venv and print the offline plan of a stack
#   make test                   set up .venv and the conformance tools, run every test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= prod-tp16
FORMAT ?= table

.PHONY: venv plan tools test lint typecheck bench clean

# Setup messages go to stderr so `make plan FORMAT=json` prints nothing but JSON on stdout.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "setting up $(VENV) (pinned requirements)" >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt >&2
	@touch $@

venv: $(VENV)/.installed

plan: venv
	@$(PY) -m infra plan $(STACK) --format $(FORMAT)

tools:
	bash tools/setup-conformance.sh

test: venv tools
	$(PY) -m infra schema --check
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check infra tests tools benchmarks
	$(PY) -m ruff format --check infra tests tools benchmarks
	@$(MAKE) --no-print-directory typecheck

# pyright from PyPI: the wheel bundles pyright's JavaScript and the [nodejs] extra brings Node.js,
# so nothing is fetched at run time; IGNORE_WARNINGS skips its "newer version?" query to PyPI.
# -p pyproject.toml: pyright would otherwise prefer a pyrightconfig.json in any parent directory.
typecheck: venv
	PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(PY) -m pyright -p pyproject.toml

bench: venv
	$(PY) benchmarks/plan_scale.py

clean:
	rm -rf $(VENV) .tools .pytest_cache
