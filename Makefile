# The README's two commands: `make repro` (the pipeline) and `make test` (the suite
# under every backend). Both build .venv/ from requirements.lock first.
VENV := .venv
PYTHON := $(VENV)/bin/python
BACKENDS := tensorflow jax torch
STAMP := $(VENV)/.installed
# The page `dvc plots show` fills (.dvc/config's plots.html_template).
PLOTS_TEMPLATE := $(VENV)/dvc_plots_offline.html

.PHONY: setup test repro lock lint notebooks

setup: $(STAMP) $(PLOTS_TEMPLATE)

# Rebuilt only when the lock file or the project's metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --disable-pip-version-check -q -r requirements.lock
	$(PYTHON) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

# vega, vega-lite and vega-embed inline, from the pinned vl-convert-python, so the
# plots render without the internet.
$(PLOTS_TEMPLATE): $(STAMP) pipeline/reporting/plots_template.py
	$(PYTHON) -m pipeline.reporting.plots_template $@

# Two pytest workers: the end-to-end tests mostly wait on their subprocesses, so one
# worker leaves a core idle. A file's tests stay on one worker (they share fixtures).
test: setup
	@status=0; for backend in $(BACKENDS); do \
		echo "=== pytest on KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend $(PYTHON) -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS) \
			|| status=1; \
	done; exit $$status

# The stages run `python`: the project's own interpreter comes first on PATH.
repro: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dvc repro

lint: setup
	$(VENV)/bin/ruff check bnk pipeline tests benchmarks notebooks

# After editing a notebook's .py: carry its cells into the .ipynb papermill runs.
notebooks: setup
	$(VENV)/bin/jupytext --sync notebooks/*.py

# Re-pin every package from what is installed in .venv (after a deliberate upgrade).
lock:
	$(PYTHON) -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements.lock
