"""Exports Ultralytics YOLO26n-sem, randomly initialised, to ONNX (the peer of bench/peers.py).

Runs in the peers' own virtualenv (`make bench-peers` makes it under build/), never in
the project's: Ultralytics is AGPL-licensed and only ever a benchmark peer here.

    build/peers-venv/bin/python bench/peer_export.py --image_size 480 640 --output peer.onnx

Prints one JSON line: {"peer", "onnx", "image_size", "params", "ultralytics", "torch"}.
Speed does not depend on the weights, so none are downloaded.
"""

import argparse
import json
import os
import shutil
import tempfile


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="yolo26n-sem.yaml", help="an Ultralytics model yaml")
    parser.add_argument("--image_size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    parser.add_argument("--output", required=True, help="the .onnx to write")
    args = parser.parse_args()

    import torch
    import ultralytics
    from ultralytics import YOLO

    model = YOLO(args.model)
    params = sum(parameter.numel() for parameter in model.model.parameters())
    with tempfile.TemporaryDirectory(prefix="peer_export_") as folder:
        os.chdir(folder)  # Ultralytics writes beside the working directory
        exported = model.export(
            format="onnx", imgsz=tuple(args.image_size), batch=1, dynamic=False, simplify=False
        )
        shutil.move(exported, args.output)
    print(
        json.dumps(
            {
                "peer": args.model.removesuffix(".yaml"),
                "onnx": args.output,
                "image_size": list(args.image_size),
                "params": params,
                "ultralytics": ultralytics.__version__,
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
