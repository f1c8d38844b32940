# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing (via `make venv`) and install with constraints.txt,
# which pins torch==2.13.0 (CPU build). A python that already has torch keeps it: the venv then
# sees the system site-packages and the pin is not applied. `make test` adds the optional extra
# [ray] (the cluster engine, tested in tests/test_engines.py).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TEST_EXTRAS := dev,ray

# install EXTRAS: the package in the venv with those extras (the torch pin unless torch is there)
define install
	@if $(PY) -c 'import torch' 2>/dev/null; then \
	  echo "keeping torch $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	  $(PY) -m pip install -q -e '.[$(1)]'; \
	else $(PY) -m pip install -q -c constraints.txt -e '.[$(1)]'; fi
endef

.PHONY: venv demo test
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@if [ ! -x $(PY) ]; then \
	  if $(PYTHON) -c 'import torch' 2>/dev/null; then \
	    echo "found an installed torch: the venv will use it"; \
	    $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else $(PYTHON) -m venv $(VENV); fi; fi
	$(call install,dev)
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(call install,$(TEST_EXTRAS))
	@touch $@

demo: venv
	$(VENV)/bin/robustnas demo

test: $(VENV)/.installed-test
	$(PY) -m pytest -q
