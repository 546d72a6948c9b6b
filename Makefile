# spicelearn: set-up, demo and tests on a fresh Debian machine with Python.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
APT_PACKAGES := ngspice libngspice0 libngspice0-dev
KICAD_APT_PACKAGES := kicad kicad-footprints
KICAD_PYTHONPATH := build/kicad-python

.PHONY: setup system venv demo test test-slow test-kicad bench clean

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

# The KiCad test (tests/test_kicad.py::test_kicad_loads_the_netlist_into_a_board) through KiCad's own
# Python module `pcbnew`, which Debian's kicad package installs into the system's dist-packages.
# That whole folder on PYTHONPATH would shadow the venv's numpy and pandas, so only pcbnew.py and its
# _pcbnew*.so are linked into $(KICAD_PYTHONPATH) (made afresh from dpkg's file list each time, so it
# follows a KiCad upgrade), and that folder alone goes on PYTHONPATH. The extension is built for the
# system's python3: the venv's interpreter must have the same ABI (EXT_SUFFIX), checked first.
# SPICELEARN_REQUIRE_KICAD=1 makes the test fail, not skip, without pcbnew or kinparse; a -k that
# selects nothing fails too (pytest exit status 5).
test-kicad: setup
	@if ! dpkg -s $(KICAD_APT_PACKAGES) >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(KICAD_APT_PACKAGES); \
	fi
	@rm -rf $(KICAD_PYTHONPATH) && mkdir -p $(KICAD_PYTHONPATH) && \
	modules=$$( (dpkg -L python3-kicad 2>/dev/null || dpkg -L kicad) | grep -E '/_?pcbnew(\.py|[.].*\.so)$$' ); \
	if [ -z "$$modules" ]; then echo "test-kicad: no pcbnew module in the kicad package's files" >&2; exit 1; fi; \
	suffix=$$($(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))'); \
	if ! echo "$$modules" | grep -qF -- "_pcbnew$$suffix"; then \
		echo "test-kicad: KiCad's module is $$(echo "$$modules" | grep '\.so$$'), but $(PY) loads *$$suffix;" \
			"make the venv with the system's Python (make clean; make PYTHON=/usr/bin/python3 test-kicad)" >&2; \
		exit 1; \
	fi; \
	ln -s $$modules $(KICAD_PYTHONPATH)/
	SPICELEARN_REQUIRE_KICAD=1 PYTHONPATH=$(CURDIR)/$(KICAD_PYTHONPATH) \
		$(PY) -m pytest -q -rs tests/test_kicad.py -k kicad_loads

bench: setup
	$(PY) benchmarks/bench_exact.py
	$(PY) benchmarks/bench_large.py
	$(PY) benchmarks/bench_ngspice.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_validate.py
	$(PY) benchmarks/bench_batched.py
	$(PY) benchmarks/bench_montecarlo.py
	$(PY) benchmarks/bench_fig2.py

clean:
	rm -rf $(VENV) out build *.egg-info
