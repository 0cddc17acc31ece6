r"""Convert the authors' DDRNet or PIDNet checkpoint into a work dir the other commands read.

Examples:

    # The authors' Cityscapes PIDNet-S, ready for predict.py / predict_video.py / export.py
    python convert_weights.py --model pidnet_s --weights PIDNet_S_Cityscapes_val.pt \
        --output runs/pidnet_s_cityscapes
    python predict_video.py --work_dir runs/pidnet_s_cityscapes --input drive.mp4 --output out.mp4

    # DDRNet-23-slim Cityscapes, evaluated on your built Cityscapes dataset
    python convert_weights.py --model ddrnet23_slim --weights DDRNet23s_cityscapes.pth \
        --dataset full_semantic/cityscapes --output runs/ddrnet23s_cityscapes
    python eval.py --work_dir runs/ddrnet23s_cityscapes --split val

The file is read without PyTorch and without running code from it (a pickle that
asks for anything but tensors is refused). Writes OUTPUT/config.json (classes,
palette, inference size), OUTPUT/checkpoints/best.keras and OUTPUT/weights.json
(what loaded). To fine-tune from an authors' file (Cityscapes or ImageNet) use
`train.py --weights FILE` instead.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.errors import command_parser, run_command  # noqa: E402


def parse_args(argv=None):
    parser = command_parser(__doc__)
    parser.add_argument(
        "--model", required=True, help="ddrnet23_slim, ddrnet23, pidnet_s, pidnet_m or pidnet_l"
    )
    parser.add_argument("--weights", required=True, help="the authors' .pth / .pt file")
    parser.add_argument("--output", required=True, help="new work dir to write")
    parser.add_argument(
        "--classes",
        choices=("cityscapes", "camvid"),
        help="class names and colours of the released model (default: from the class "
        "count, 19 = cityscapes, 11 = camvid; else class_0, class_1, ...)",
    )
    parser.add_argument(
        "--dataset", help="built dataset the model was trained on (classes; eval/export use it)"
    )
    parser.add_argument("--data_dir", help="TFDS data dir of --dataset")
    parser.add_argument(
        "--image_size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="inference size (default 1024 2048 for cityscapes, 720 960 for camvid)",
    )
    return parser.parse_args(argv)


def main(args):
    from semseg.pretrained import convert_checkpoint

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
