# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv with the CPU build of torch (pip takes torch==2.13.0 from local disk here;
# on a GPU machine install a CUDA build first, see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: venv demo test bench clean

$(BIN)/explain-distill: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

venv: $(BIN)/explain-distill

demo: venv
	$(BIN)/explain-distill run --dataset digits

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) reports/*/ .pytest_cache
