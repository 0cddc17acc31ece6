r"""Convert a DDRNet or PIDNet checkpoint (a published name, the authors' or MMSegmentation's
file) into a work dir the other commands read, or list the published names.

Examples:

    # The published weights by name: what they are, the publisher's mIoU
    python convert_weights.py --list

    # MMSegmentation's Cityscapes PIDNet-S, downloaded once into $SEMSEG_CACHE
    python convert_weights.py --weights pidnet_s_cityscapes --output runs/pidnet_s_cityscapes
    python predict_video.py --work_dir runs/pidnet_s_cityscapes --input drive.mp4 --output out.mp4

    # The authors' Cityscapes PIDNet-S file (Google Drive), or MMSeg's downloaded by hand
    python convert_weights.py --model pidnet_s --weights PIDNet_S_Cityscapes_val.pt \
        --output runs/pidnet_s_cityscapes

    # DDRNet-23-slim Cityscapes, evaluated on your built Cityscapes dataset
    python convert_weights.py --model ddrnet23_slim --weights DDRNet23s_cityscapes.pth \
        --dataset full_semantic/cityscapes --output runs/ddrnet23s_cityscapes
    python eval.py --work_dir runs/ddrnet23s_cityscapes --split val

The file is read without PyTorch and without running code from it (a pickle that
asks for anything but tensors is refused); which naming it uses (the authors' or
MMSegmentation's) is told from its keys. Writes OUTPUT/config.json (classes,
palette, inference size), OUTPUT/checkpoints/best.keras and OUTPUT/weights.json
(what loaded). To fine-tune from a checkpoint (Cityscapes or ImageNet) use
`train.py --weights NAME_OR_FILE` instead; `predict.py --weights NAME` converts a
published model on first use without this step.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.base.cli import parse_config, run_command  # noqa: E402
from semseg.weights.options import ConvertWeightsConfig  # noqa: E402


def parse_args(argv=None):
    return parse_config(ConvertWeightsConfig, __doc__, argv)


def main(args):
    if args.list:
        from semseg.config.published_weights import markdown_table

        print(markdown_table())
        return
    from semseg.weights.convert import convert_checkpoint

    path, report = convert_checkpoint(
        args.model,
        args.weights,
        args.output,
        class_set=args.classes,
        dataset=args.dataset,
        data_dir=args.data_dir,
        image_size=args.image_size,
    )
    print(report.summary())
    print(f"converted: {path}/checkpoints/best.keras (config.json, weights.json beside it)")


if __name__ == "__main__":
    run_command(main, parse_args)
