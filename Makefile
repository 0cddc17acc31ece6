# `make demo`: install everything, then run the whole path on the built-in demo data:
#   synthetic CVAT export -> tfds build -> train DDRNet-23-slim -> eval -> predict.
# `make test`: install everything, then lint and run the default test suite (tests marked
#   `large` left out; 12 minutes or less on 2 cores).
# `make test-all`: the same with every test, the `large` ones included (what CI runs); the
#   `gpu` tests run in a process of their own through bench/gpu_check.sh (a default test
#   runs its --smoke on the CPU).
# `make lock`: re-pin requirements.lock after a requirements file changed.
# `make bench-peers`: Ultralytics YOLO26n-sem against our models, one run (bench/peers.py),
#   written into bench/RESULTS.md; the peer lives in its own virtualenv under build/, never
#   in the project's.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= build/demo
DEMO_EPOCHS ?= 15
TCMALLOC := /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
CHROMIUM := /usr/bin/chromium

PEERS_VENV ?= build/peers-venv

.PHONY: install lock demo test test-all lint clean bench-peers

install: $(VENV)/.installed

$(PEERS_VENV)/.installed: bench/peers-requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q -r bench/peers-requirements.txt
	touch $@

bench-peers: install $(PEERS_VENV)/.installed
	mkdir -p $(BENCH)
	uptime
	$(BIN)/python bench/peers.py --peer_python $(PEERS_VENV)/bin/python > $(BENCH)/peers.jsonl
	$(BIN)/python bench/report.py peers --results $(BENCH)/peers.jsonl --output bench/RESULTS.md

# The one install script, shared with docker/Dockerfile.cpu and docker/Dockerfile.gpu:
# requirements-dev.txt (which includes requirements.txt) at the versions of requirements.lock.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.lock \
		docker/install_requirements.sh docker/lock_requirements.py
	docker/install_requirements.sh --python $(PYTHON) --dev $(VENV)
	touch $@

# After editing a requirements file: re-resolve requirements.lock (keeps the old versions
# where they still fit; `make lock LOCK_FLAGS=--upgrade` moves everything forward).
lock:
	$(PYTHON) docker/lock_requirements.py $(LOCK_FLAGS)

demo: install
	$(BIN)/python make_demo_data.py --output $(DEMO)/cvat_export
	$(BIN)/tfds build full_semantic --config cvat --manual_dir $(DEMO)/cvat_export \
		--data_dir $(DEMO)/tfds --overwrite
	rm -rf $(DEMO)/run
	$(BIN)/python train.py --dataset full_semantic/cvat --data_dir $(DEMO)/tfds \
		--model ddrnet23_slim --image_size 160 160 --batch_size 16 --epochs $(DEMO_EPOCHS) \
		--optimizer adamw --learning_rate 0.003 --weight_decay 0.0001 --work_dir $(DEMO)/run
	$(BIN)/python eval.py --work_dir $(DEMO)/run --split val --visualize --fail_under 0.80
	$(BIN)/python predict.py --work_dir $(DEMO)/run --input $(DEMO)/cvat_export/JPEGImages \
		--output $(DEMO)/predictions
	@echo "demo done: overlays in $(DEMO)/run/eval/val/vis and $(DEMO)/predictions/overlays"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint $(TCMALLOC)
	$(BIN)/python -m pytest

test-all: lint $(TCMALLOC) $(CHROMIUM)
	$(BIN)/python -m pytest -m "not gpu"

# Debian packages some tests need: tcmalloc (libtcmalloc-minimal4, README's LD_PRELOAD for
# long runs; a test trains under it) and, for `make test-all`, headless Chromium (a test
# opens predict_realtime.py's web live view in it).
$(TCMALLOC):
	$(call apt_install,libtcmalloc-minimal4)

$(CHROMIUM):
	$(call apt_install,chromium)

define apt_install
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
		--no-install-recommends $(1)
endef

clean:
	rm -rf build $(VENV)

# `make bench`: latency of every runtime and precision, training steps, the input pipeline,
# multi-device steps, memory with and without tcmalloc,
# and reduced-precision accuracy on the demo run (trained by `make demo` if missing), then
# bench/RESULTS.md. Run it on a quiet machine: other work on the cores slows every figure.
BENCH ?= build/bench
BENCH_RUN ?= $(DEMO)/run
BENCH_LATENCY = keras:fp32 xla:fp32 saved_model:fp32 tflite:fp32 onnx:fp32 \
	keras:bf16 saved_model:bf16 tflite:fp16 tflite:int8 onnx:int8
# Latency of each model alternates on every runtime, so their ratio comes from one run.
BENCH_MODELS = ddrnet23_slim pidnet_s
BENCH_TRAIN = "--precision fp32" "--precision bf16" "--precision fp32 --jit"
BENCH_ACCURACY = onnx:int8 tflite:int8 keras:bf16

.PHONY: bench
bench: install
	mkdir -p $(BENCH)
	rm -f $(BENCH)/results.jsonl
	$(BIN)/python bench/report.py machine --output $(BENCH)/machine.json
	for spec in $(BENCH_LATENCY); do for model in $(BENCH_MODELS); do \
		$(BIN)/python bench/latency.py --model $$model --image_size 480 640 \
			--runtime $${spec%:*} --precision $${spec#*:} >> $(BENCH)/results.jsonl || exit 1; \
	done; done
	for flags in $(BENCH_TRAIN); do \
		$(BIN)/python bench/train_step.py --model ddrnet23_slim --image_size 360 480 \
			--batch_size 8 $$flags >> $(BENCH)/results.jsonl || exit 1; \
	done
	$(BIN)/python bench/input_pipeline.py --image_size 360 480 --batch_size 8 \
		>> $(BENCH)/results.jsonl
	$(BIN)/python bench/distributed.py --image_size 360 480 --batch_size 8 \
		>> $(BENCH)/results.jsonl
	$(BIN)/python bench/memory.py --epochs 5 >> $(BENCH)/results.jsonl
	test -f $(BENCH_RUN)/checkpoints/best.keras || $(MAKE) demo
	for spec in $(BENCH_ACCURACY); do \
		$(BIN)/python bench/precision_accuracy.py --work_dir $(BENCH_RUN) \
			--runtime $${spec%:*} --precision $${spec#*:} >> $(BENCH)/results.jsonl || exit 1; \
	done
	$(BIN)/python bench/report.py markdown --machine $(BENCH)/machine.json \
		--results $(BENCH)/results.jsonl --output bench/RESULTS.md
