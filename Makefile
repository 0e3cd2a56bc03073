# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv with the CPU build of torch (pip takes torch==2.13.0 from local disk here);
# on a GPU machine pass a CUDA build: `make demo TORCH=torch` (PyPI's default Linux wheel is CUDA).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: venv graphviz system-deps demo test bench clean

$(BIN)/explain-distill: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

venv: $(BIN)/explain-distill

# graphviz's `dot` draws the trees (the demo's report and the tests); Debian's chromium is the
# browser the report tests drive.  Both are installed with apt-get when missing (Debian/Ubuntu).
APT_INSTALL = \
	if command -v apt-get >/dev/null 2>&1; then \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
	  echo "installing $(1) with apt-get"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(1) >/dev/null; \
	else \
	  echo "install $(2) with your package manager" >&2; exit 1; \
	fi

graphviz:
	@if command -v dot >/dev/null 2>&1; then exit 0; fi; \
	$(call APT_INSTALL,graphviz fonts-dejavu-core,graphviz (the dot program))

system-deps: graphviz
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	$(call APT_INSTALL,chromium fonts-dejavu-core,chromium (/usr/bin/chromium))

# The demo's report draws its trees with graphviz, so it installs it as `make test` does.
demo: venv graphviz
	$(BIN)/explain-distill run --dataset digits

# pytest's exit code 5 (no tests collected) is not a failure; make would turn it into 2.
test: venv system-deps
	@$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

bench: venv
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) reports/*/ .pytest_cache
