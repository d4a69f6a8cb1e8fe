# minnow: make deps | test | test-long | bench | demo | lint
SHELL := /bin/bash
export MINNOW_DATA ?= $(abspath ../shared/data)
GO ?= go

.PHONY: deps deps-node test test-long bench demo demo-sft demo-rl demo-distill lint build

deps: ## Install OpenBLAS when missing (as root, through apt-get); without it, build with CGO_ENABLED=0.
	@if ldconfig -p | grep -q 'libopenblas\.so ' && { [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ]; }; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null; \
	else echo "deps: libopenblas-dev is missing and this is not root: install it, or build with CGO_ENABLED=0 (pure-Go BLAS)" >&2; exit 1; fi

deps-node: ## Install the npm reference tools: tiktoken (tokenizer benchmark) and node-llama-cpp with its prebuilt linux-x64 llama.cpp (GGUF export checks), pinned by the lock file; nothing is built, and NODE_LLAMA_CPP_SKIP_DOWNLOAD stops node-llama-cpp from fetching anything itself. npm install is the fallback where the registry lacks node-llama-cpp's other-platform binaries, which npm ci then reports missing from the lock file.
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; else echo "deps-node: npm is missing" >&2; exit 1; fi; }
	@[ -d tools/node/node_modules/tiktoken ] && [ -f tools/node/node_modules/node-llama-cpp/package.json ] && [ -d tools/node/node_modules/@node-llama-cpp/linux-x64 ] || \
		(cd tools/node && export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true && \
		{ npm ci --omit=optional --silent --no-audit --no-fund 2>/dev/null || npm install --omit=optional --no-save --silent --no-audit --no-fund; })

build: deps
	$(GO) build ./...

test: deps deps-node lint
	$(GO) test -count=1 ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./tensor/...
	CGO_ENABLED=0 $(GO) test -count=1 -tags purego ./tensor/cpu/...
	cd interop/gorgonia && $(GO) test -count=1 ./...

test-long: test
	$(GO) test -count=1 -run . -bench . -benchtime 1x ./...

bench: deps deps-node
	$(GO) run ./cmd/minnow bench core
	$(GO) run ./cmd/minnow bench tokenize --compare
	$(GO) test ./gguf -run '^$$' -bench Encode -benchtime 3x

ifndef DEMO_DIR
DEMO_DIR := runs/demo-$(shell date +%Y%m%d-%H%M%S)
endif
MINNOW_BIN := runs/bin/minnow

DEMO_QUESTION := What is 352 + 479?

demo: deps deps-node ## The arithmetic task end to end: pretrain a tiny model, SFT, GRPO, export to GGUF, and ask llama.cpp a question with it.
	$(GO) build -o $(MINNOW_BIN) ./cmd/minnow
	$(MINNOW_BIN) version
	$(MINNOW_BIN) recipes ls
	$(MINNOW_BIN) run arith-pretrain --out $(DEMO_DIR)/arith-pretrain --every 50
	$(MINNOW_BIN) run arith-sft --set model.checkpoint=$(DEMO_DIR)/arith-pretrain --out $(DEMO_DIR)/arith-sft --every 50
	$(MINNOW_BIN) run arith-grpo --set model.checkpoint=$(DEMO_DIR)/arith-sft --out $(DEMO_DIR)/arith-grpo --every 10
	$(MINNOW_BIN) plot $(DEMO_DIR)/arith-pretrain $(DEMO_DIR)/arith-sft --out $(DEMO_DIR)/loss.png
	$(MINNOW_BIN) plot $(DEMO_DIR)/arith-grpo --out $(DEMO_DIR)/grpo.png
	$(MINNOW_BIN) runs ls $(DEMO_DIR)
	@echo "llama.cpp, running $(DEMO_DIR)/arith-grpo/model-q8_0.gguf: $(DEMO_QUESTION)"
	@node tools/node/llama-generate.mjs $(DEMO_DIR)/arith-grpo/model-q8_0.gguf $$'$(DEMO_QUESTION)\n' 96
	@echo "run folders: $(DEMO_DIR)/arith-pretrain $(DEMO_DIR)/arith-sft $(DEMO_DIR)/arith-grpo (answers in */samples.jsonl)"
	@echo "plots: $(DEMO_DIR)/loss.png $(DEMO_DIR)/grpo.png"

# demo-sft builds minnow and the arithmetic SFT model that demo-rl and
# demo-distill start from (a finished run is not trained again).
demo-sft:
	$(GO) build -o $(MINNOW_BIN) ./cmd/minnow
	$(MINNOW_BIN) run arith-pretrain --out $(DEMO_DIR)/arith-pretrain --quiet
	$(MINNOW_BIN) run arith-sft --set model.checkpoint=$(DEMO_DIR)/arith-pretrain --out $(DEMO_DIR)/arith-sft --quiet

demo-rl: demo-sft ## The RL demonstration (issue 7's table in the README): pretrain and SFT on verbose worked solutions, then GRPO, TLDR and DPO from the SFT model.
	for m in grpo tldr dpo; do $(MINNOW_BIN) run arith-$$m --set model.checkpoint=$(DEMO_DIR)/arith-sft --out $(DEMO_DIR)/arith-$$m --quiet || exit 1; done
	$(MINNOW_BIN) runs ls $(DEMO_DIR)
	@for m in grpo tldr dpo; do echo "== arith-$$m"; grep -E '^\| (held-out|thinking|budget|preference)' $(DEMO_DIR)/arith-$$m/summary.md; done

# demo-distill aligns the teacher once, in the DCKD run, and the other runs
# reuse that DPO teacher.
DISTILL_T = --set distill.teacher.checkpoint=$(DEMO_DIR)/arith-sft-teacher
DISTILL_S = --set model.checkpoint=$(DEMO_DIR)/arith-sft
DISTILL_D = --set distill.teacher.dpo=$(DEMO_DIR)/distill-dckd/teacher-dpo.ckpt

demo-distill: demo-sft ## The distillation chain (issue 9's table in the README): student and teacher pretrained and SFT'd, the teacher aligned with DPO, then the student by KD, DCKD, ADPA and ADPA+.
	$(MINNOW_BIN) run arith-pretrain-teacher --out $(DEMO_DIR)/arith-pretrain-teacher --quiet
	$(MINNOW_BIN) run arith-sft-teacher --set model.checkpoint=$(DEMO_DIR)/arith-pretrain-teacher --out $(DEMO_DIR)/arith-sft-teacher --quiet
	$(MINNOW_BIN) run distill-dckd $(DISTILL_T) $(DISTILL_S) --set distill.eval.teachers=true --out $(DEMO_DIR)/distill-dckd --quiet
	$(MINNOW_BIN) run distill-kd $(DISTILL_T) $(DISTILL_S) $(DISTILL_D) --out $(DEMO_DIR)/distill-kd --quiet
	$(MINNOW_BIN) run distill-adpa $(DISTILL_T) $(DISTILL_S) $(DISTILL_D) --out $(DEMO_DIR)/distill-adpa --quiet
	$(MINNOW_BIN) run distill-dckd $(DISTILL_T) $(DISTILL_S) $(DISTILL_D) --set distill.weights.kd=0 --out $(DEMO_DIR)/distill-sft-only --quiet
	$(MINNOW_BIN) run distill-adpa-plus $(DISTILL_T) $(DISTILL_D) --set model.checkpoint=$(DEMO_DIR)/distill-dckd \
		--set distill.eval.baseline=$(DEMO_DIR)/arith-sft --out $(DEMO_DIR)/distill-adpa-plus --quiet
	$(MINNOW_BIN) runs ls $(DEMO_DIR)
	@for m in dckd kd adpa sft-only adpa-plus; do echo "== distill-$$m"; grep -E '^\| (held-out|teacher|student|win|baseline)' $(DEMO_DIR)/distill-$$m/summary.md; done

lint:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd interop/gorgonia && $(GO) vet ./...
