# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing (via `make venv`) and install with constraints.txt,
# which pins torch==2.13.0 (CPU build). A python that already has torch keeps it: the venv then
# sees the system site-packages and the pin is not applied.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: venv demo test
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@if [ ! -x $(PY) ]; then \
	  if $(PYTHON) -c 'import torch' 2>/dev/null; then \
	    echo "found an installed torch: the venv will use it"; \
	    $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else $(PYTHON) -m venv $(VENV); fi; fi
	@if $(PY) -c 'import torch' 2>/dev/null; then \
	  echo "keeping torch $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	  $(PY) -m pip install -q -e '.[dev]'; \
	else $(PY) -m pip install -q -c constraints.txt -e '.[dev]'; fi
	@touch $@

demo: venv
	$(VENV)/bin/robustnas demo

test: venv
	$(PY) -m pytest -q
