# `make demo`: install everything, then run the whole path on the built-in demo data:
#   synthetic CVAT export -> tfds build -> train DDRNet-23-slim -> eval -> predict.
# `make test`: install everything, then lint and run the test suite.
# `make lock`: re-pin requirements.lock after a requirements file changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= build/demo
DEMO_EPOCHS ?= 15

.PHONY: install lock demo test lint clean

install: $(VENV)/.installed

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

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf build $(VENV)
