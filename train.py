"""Train a segmentation model on a dataset built by `tfds build full_semantic`.

Examples:

    # CamVid exported from CVAT, built with the JSON config in the README
    python train.py --dataset full_semantic/camvid --data_dir ~/tensorflow_datasets \
        --model ddrnet23_slim --image_size 360 480 --batch_size 8 --epochs 100 \
        --work_dir runs/camvid_ddrnet

    # A quick look: two epochs of five steps
    python train.py --dataset full_semantic/camvid --image_size 360 480 --epochs 2 \
        --steps_per_epoch 5 --work_dir runs/smoke

    # DeepLabV3+ on an ImageNet EfficientNet-B0, cross-entropy + Lovasz, auto class weights
    python train.py --dataset full_semantic/camvid --model effdeeplabv3plus_b0 \
        --weights imagenet --loss ce:1.0,lovasz:0.5 --class_weights auto \
        --image_size 360 480 --work_dir runs/camvid_effdeeplab

    # DDRNet with the reference recipe: OHEM cross-entropy, auxiliary head weighted 0.4
    python train.py --dataset full_semantic/camvid --loss "ohem(thresh=0.7)" \
        --aux_weight 0.4 --image_size 360 480 --work_dir runs/camvid_ohem

    # Binary segmentation (a dataset with 2 classes): one logit, BCE + Dice
    python train.py --dataset full_semantic/cracks --binary --loss bce:1.0,dice:1.0 \
        --image_size 512 512 --work_dir runs/cracks

Rerunning an interrupted command resumes it from its last completed epoch. The
work dir receives config.json, checkpoints/{best,last}.keras, history.csv and
TensorBoard logs; eval.py and the predictors read everything from there.
"""

import argparse
import json
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.errors import InputError  # noqa: E402
from semseg.run_config import (  # noqa: E402
    OPTIMIZERS,
    OUTPUT_STRIDES,
    PRETRAINED_WEIGHTS,
    SCHEDULES,
    RunConfig,
)

DEFAULTS = RunConfig(work_dir="", dataset="builder/config")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work_dir", required=True, help="output folder of the run")
    parser.add_argument(
        "--dataset", required=True, help="built TFDS dataset, e.g. full_semantic/camvid"
    )
    parser.add_argument("--data_dir", help="TFDS data dir (default ~/tensorflow_datasets)")
    parser.add_argument("--model", default=DEFAULTS.model, help="a name from models.MODELS")
    parser.add_argument(
        "--image_size",
        type=int,
        nargs=2,
        default=DEFAULTS.image_size,
        metavar=("H", "W"),
        help="training crop and inference size",
    )
    parser.add_argument("--batch_size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    parser.add_argument(
        "--steps_per_epoch", type=int, help="batches per epoch (default: one pass over the split)"
    )
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer)
    parser.add_argument("--learning_rate", type=float, default=DEFAULTS.learning_rate)
    parser.add_argument("--momentum", type=float, default=DEFAULTS.momentum, help="SGD only")
    parser.add_argument("--weight_decay", type=float, default=DEFAULTS.weight_decay)
    parser.add_argument("--schedule", choices=SCHEDULES, default=DEFAULTS.schedule)
    parser.add_argument(
        "--loss",
        default=DEFAULTS.loss,
        help="loss spec: comma-separated NAME[(OPTION=VALUE,...)][:WEIGHT] terms, NAME one of "
        "ce, focal, ohem, lovasz, dice, bce, binary_focal, lovasz_hinge; e.g. "
        "'ce:1.0,lovasz:0.5' or 'ohem(thresh=0.7,min_kept=100000)' (see semseg/losses.py)",
    )
    parser.add_argument(
        "--class_weights",
        help="class weights of ce/ohem: auto (inverse frequency on the train split), median "
        "(median frequency balancing) or one comma-separated number per class",
    )
    parser.add_argument(
        "--binary",
        action="store_true",
        help="binary segmentation of a 2-class dataset: one logit (sigmoid), class 1 is "
        "the foreground; ce/focal/lovasz mean bce/binary_focal/lovasz_hinge (implied by a "
        "binary loss)",
    )
    parser.add_argument(
        "--weights",
        choices=PRETRAINED_WEIGHTS,
        help="pretrained encoder weights (downloaded through Keras; default: random "
        "initialisation)",
    )
    parser.add_argument(
        "--output_stride",
        type=int,
        choices=OUTPUT_STRIDES,
        help="output stride of keras.applications encoders (default: the model's own)",
    )
    parser.add_argument(
        "--aux_weight",
        type=float,
        default=DEFAULTS.aux_weight,
        help="weight of the auxiliary head's loss (0 = no auxiliary head; DDRNet uses 0.4)",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.augment,
        help="random scale, crop, flip and photometric distortion",
    )
    parser.add_argument(
        "--scale_range",
        type=float,
        nargs=2,
        default=DEFAULTS.scale_range,
        metavar=("MIN", "MAX"),
        help="random scale factors of the augmentation",
    )
    parser.add_argument("--train_split", default=DEFAULTS.train_split)
    parser.add_argument("--val_split", default=DEFAULTS.val_split)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    return parser.parse_args(argv)


def main(args):
    from semseg.training import train

    config = RunConfig(**vars(args))
    train(config)
    best = json.loads((config.work_path / "checkpoints" / "best.json").read_text())
    print(f"best {best['monitor']} {best['value']:.4f} at epoch {best['epoch']}")
    print(f"checkpoints: {config.work_path / 'checkpoints'}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main(parse_args())
    except InputError as error:
        sys.exit(f"error: {error}")
