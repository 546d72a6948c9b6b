# spicelearn: set-up, demo and tests on a fresh Debian machine with Python.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
APT_PACKAGES := ngspice libngspice0 libngspice0-dev

.PHONY: setup system venv demo test test-slow bench clean

setup: system venv

# Debian packages (ngspice and its shared library); skipped when already present.
system:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES); \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]'
	touch $@

venv: $(VENV)/.installed

demo: setup
	$(VENV)/bin/spicelearn demo --out-dir out

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) benchmarks/bench_exact.py
	$(PY) benchmarks/bench_ngspice.py

clean:
	rm -rf $(VENV) out build *.egg-info
