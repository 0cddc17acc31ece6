"""Exports Ultralytics YOLO26n-sem, randomly initialised, to ONNX and to OpenVINO with
Ultralytics' own exporter (the peer of bench/peers.py).

Runs in the peers' own virtualenv (`make bench-peers` makes it under build/), never in
the project's: Ultralytics is AGPL-licensed and only ever a benchmark peer here.

    build/peers-venv/bin/python bench/peer_export.py --image_size 480 640 --output peer.onnx \
        --openvino_output peer_openvino

Prints one JSON line: {"peer", "onnx", "openvino", "image_size", "params", "ultralytics",
"torch"}.
Speed does not depend on the weights, so none are downloaded.
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# The peers' virtualenv has none of our packages: the flags' plumbing is imported from the
# project's folder (the standard library only).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.options import InferenceSizeOptions  # noqa: E402
from semseg.base.cli import option, parse_config  # noqa: E402


@dataclasses.dataclass
class PeerExportConfig(InferenceSizeOptions):
    model: str = option("yolo26n-sem.yaml", "an Ultralytics model yaml")
    output: str = option(required=True, help="the .onnx to write")
    openvino_output: str | None = option(
        help="also the folder of its OpenVINO IR (Ultralytics' export(format='openvino'))"
    )


def main(args):
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
        if args.openvino_output:
            # fp32 weights, as Ultralytics exports by default (`half=False`); its runtime
            # picks the CPU's fastest precision at compile time.
            exported = model.export(
                format="openvino", imgsz=tuple(args.image_size), batch=1, dynamic=False
            )
            shutil.move(exported, args.openvino_output)
    print(
        json.dumps(
            {
                "peer": args.model.removesuffix(".yaml"),
                "onnx": args.output,
                "openvino": args.openvino_output,
                "image_size": list(args.image_size),
                "params": params,
                "ultralytics": ultralytics.__version__,
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(parse_config(PeerExportConfig, __doc__))
