# `make demo`: install everything, then run the whole path on the built-in demo data:
#   synthetic CVAT export -> tfds build -> train DDRNet-23-slim -> eval -> predict.
# `make test`: install everything, then lint and run the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= build/demo
DEMO_EPOCHS ?= 15

.PHONY: install demo test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

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
