# Two commands do all set-up on a fresh Debian machine with Python 3.11:
#   make run    create .venv, install the runtime, start the app on the bundled model
#   make test   create .venv, install runtime + test tools (+ chromium when root), run every test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: run test test-fast test-portable bench load browser-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(BIN)/python app.py $(ARGS)

# Debian's chromium drives the browser tests (playwright's own browser download fails offline), with a
# CJK font so the 中文 views render as text, not boxes (the server itself needs no fonts).
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
browser-deps:
	@missing=""; [ -x /usr/bin/chromium ] || missing="chromium"; [ -e $(CJK_FONT) ] || missing="$$missing fonts-wqy-zenhei"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "note: $$missing missing and not root: browser tests may be skipped or show boxes for 中文" >&2; fi

test: $(VENV)/.dev browser-deps
	$(BIN)/python -m pytest $(ARGS)

# The engine's tests as on a CPU with AVX2 alone (no AVX-512, no bf16 instructions): oneDNN and ATen limited
# to AVX2, so a test that assumes a CPU feature fails here on any x86-64 machine. .ci/run calls it too.
PORTABLE_TESTS := tests/test_kernel_choice.py tests/test_fast_decode.py tests/test_row_invariance.py tests/test_batching.py
test-portable: $(VENV)/.dev
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 \
		$(BIN)/python -m pytest -q -m "not slow" $(PORTABLE_TESTS)

test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

# The benchmark's inspection peer (TransformerLens) has its own requirements: the app and the tests do not need it.
$(VENV)/.peers: bench/requirements-peers.txt $(VENV)/.dev
	$(BIN)/pip install -q -r bench/requirements-peers.txt
	touch $@

bench: $(VENV)/.peers
	$(BIN)/python -m bench.run $(ARGS)

load: $(VENV)/.dev
	$(BIN)/python -m bench.load $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
