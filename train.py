r"""Train a segmentation model on a dataset built by `tfds build full_semantic`.

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

    # The CamVid recipe (every setting in one JSON file); flags override it
    python train.py --recipe recipes/camvid_ddrnet23_slim.json --data_dir ~/tensorflow_datasets \
        --work_dir runs/camvid_recipe

    # Iteration-based: 20000 steps of poly decay after a 1000-step linear warm-up,
    # validating every 500 steps; AdamW; bfloat16 mixed precision on the CPU
    python train.py --dataset full_semantic/camvid --steps 20000 --steps_per_epoch 500 \
        --warmup_steps 1000 --optimizer adamw --learning_rate 0.001 --weight_decay 0.01 \
        --mixed_precision --image_size 360 480 --work_dir runs/camvid_iterations

    # All GPUs of the machine, 8 images per GPU, learning rate scaled by the GPU count;
    # tcmalloc keeps the host memory flat over long runs
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 python train.py \
        --dataset full_semantic/camvid --multi_gpu --batch_size 8 --scale_lr linear \
        --image_size 360 480 --work_dir runs/camvid_4gpu

    # Two machines: the same command on each, TF_CONFIG naming both and this one's index
    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}' \
        python train.py --dataset full_semantic/camvid --image_size 360 480 --work_dir runs/two

    # PIDNet-S from the authors' ImageNet file, trained as in the paper (P, D heads, BAS loss)
    python train.py --recipe recipes/camvid_pidnet_s.json --data_dir ~/tensorflow_datasets \
        --weights PIDNet_S_ImageNet.pth.tar --work_dir runs/camvid_pidnet_s

    # Fine-tune a Cityscapes run on CamVid: matching layers load, the classifier does not
    python train.py --dataset full_semantic/camvid --init_from runs/cityscapes \
        --learning_rate 0.005 --image_size 360 480 --work_dir runs/camvid_finetuned

Rerunning an interrupted (even SIGKILLed) command resumes it from its last
completed epoch with the optimizer state and learning-rate schedule; a NaN loss
stops the run with exit status 1 and keeps the last good epoch. The work dir
receives config.json, checkpoints/{best,last}.keras, history.csv,
training_curves.png and TensorBoard logs (loss, mIoU, learning rate and
prediction images); eval.py and the predictors read everything from there.
See the README section "Training at scale".
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.errors import command_parser, run_command  # noqa: E402
from semseg.run_config import (  # noqa: E402
    LEARNING_RATE_SCALING,
    OPTIMIZERS,
    OUTPUT_STRIDES,
    SCHEDULES,
    RunConfig,
    apply_recipe,
    config_from_flags,
)

DEFAULTS = RunConfig(work_dir="", dataset="builder/config")


def build_parser():
    parser = command_parser(__doc__)
    parser.add_argument(
        "--work_dir",
        help="output folder of the run; rerun with the same one to resume it (default: a new "
        "runs/<config>-<model>)",
    )
    parser.add_argument(
        "--dataset",
        help="built TFDS dataset, e.g. full_semantic/camvid (default: the one full_semantic "
        "build in --data_dir)",
    )
    parser.add_argument(
        "--recipe",
        metavar="FILE.json",
        help="JSON object of these flags without -- (e.g. recipes/camvid_ddrnet23_slim.json); "
        "flags on the command line override it",
    )
    parser.add_argument(
        "--data_dir", help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)"
    )
    parser.add_argument("--model", default=DEFAULTS.model, help="a name from models.MODELS")
    parser.add_argument(
        "--image_size",
        type=int,
        nargs=2,
        default=DEFAULTS.image_size,
        metavar=("H", "W"),
        help="training crop and inference size",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=DEFAULTS.batch_size,
        help="images per step of each replica (GPU or worker); the global batch is this "
        "times the number of replicas",
    )
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    parser.add_argument(
        "--steps_per_epoch", type=int, help="batches per epoch (default: one pass over the split)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        help="iteration-based training: total optimiser steps (replaces --epochs; an epoch "
        "is then a validation interval of --steps_per_epoch steps)",
    )
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer)
    parser.add_argument(
        "--learning_rate",
        type=float,
        default=DEFAULTS.learning_rate,
        help="peak learning rate (for one replica's batch with --scale_lr linear)",
    )
    parser.add_argument(
        "--scale_lr",
        choices=LEARNING_RATE_SCALING,
        default=DEFAULTS.scale_lr,
        help="learning-rate scaling with the number of replicas: none, or linear (times the "
        "replicas, i.e. global batch / --batch_size)",
    )
    parser.add_argument("--momentum", type=float, default=DEFAULTS.momentum, help="SGD only")
    parser.add_argument("--weight_decay", type=float, default=DEFAULTS.weight_decay)
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=DEFAULTS.schedule,
        help="poly (power 0.9), cosine or constant, over the whole run",
    )
    parser.add_argument(
        "--warmup_steps",
        type=int,
        default=DEFAULTS.warmup_steps,
        help="linear learning-rate warm-up over this many steps",
    )
    parser.add_argument(
        "--warmup_epochs",
        type=int,
        default=DEFAULTS.warmup_epochs,
        help="linear learning-rate warm-up over this many epochs (instead of --warmup_steps)",
    )
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
        metavar="imagenet|FILE",
        help="start from pretrained weights: imagenet (keras.applications encoders, "
        "downloaded through Keras), the encoder's .h5 file (offline), the authors' "
        "DDRNet/PIDNet checkpoint (.pth/.pt: Cityscapes or ImageNet; the classifier is "
        "skipped when the class count differs), or a .keras file; default: random "
        "initialisation. W/weights.json lists what loaded",
    )
    parser.add_argument(
        "--init_from",
        metavar="RUN_OR_FILE.keras",
        help="fine-tune: start from the weights of a work dir (its best checkpoint) or a "
        ".keras file, layer by layer where names and shapes match (the classifier is "
        "skipped when the class count differs)",
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
        help="weight of the auxiliary head's loss (0 = no auxiliary head; DDRNet and PIDNet "
        "use 0.4)",
    )
    parser.add_argument(
        "--boundary_weight",
        type=float,
        default=DEFAULTS.boundary_weight,
        help="PIDNet with --aux_weight > 0: coefficient of the D head's class-balanced "
        "boundary BCE (the paper's 20)",
    )
    parser.add_argument(
        "--bas_weight",
        type=float,
        default=DEFAULTS.bas_weight,
        help="PIDNet with --aux_weight > 0: weight of the boundary-aware semantic loss on "
        "pixels whose boundary probability exceeds 0.8 (the paper's 1.0)",
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
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="seeds weights, data order, augmentation"
    )
    parser.add_argument(
        "--mixed_precision",
        action="store_true",
        help="compute in float16 on GPUs, bfloat16 on CPUs; variables, logits, softmax and "
        "loss stay float32 (float16 with loss scaling); float32 with a warning where the "
        "hardware would only emulate them (config.json records the precision that ran)",
    )
    parser.add_argument(
        "--force_mixed_precision",
        action="store_true",
        help="with --mixed_precision: keep bfloat16/float16 where the hardware lacks it "
        "(no AVX512_BF16 or AMX on a CPU, no tensor cores on a GPU), which --mixed_precision "
        "alone replaces by float32 with a warning; emulated and slower, for numerical checks",
    )
    parser.add_argument(
        "--float64",
        action="store_true",
        help="compute and keep the weights in float64 (logits and loss stay float32), for "
        "numerical checks such as comparing a multi-worker run with one process; slow",
    )
    parser.add_argument(
        "--multi_gpu",
        action="store_true",
        help="data-parallel training on all visible GPUs (tf.distribute.MirroredStrategy)",
    )
    parser.add_argument(
        "--cpu_devices",
        type=int,
        metavar="N",
        help="with --multi_gpu and no GPU: split the CPU into N devices (tests the "
        "multi-device path; not faster)",
    )
    parser.add_argument(
        "--vis_every",
        type=int,
        default=DEFAULTS.vis_every,
        metavar="N",
        help="prediction images of a fixed validation batch in TensorBoard every N epochs "
        "(0: none)",
    )
    return parser


def parse_args(argv=None):
    """The `RunConfig` of the flags, the `--recipe` merged in, defaults resolved and checked."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Which flags were given: parse again into a namespace whose values are all a
    # marker (argparse fills in defaults only for names the namespace lacks).
    unset = object()
    marked = parser.parse_args(argv, argparse.Namespace(**{name: unset for name in vars(args)}))
    given = {name for name, value in vars(marked).items() if value is not unset}
    verbose = vars(args).pop("verbose")
    config, chose_work_dir = config_from_flags(apply_recipe(vars(args), given))
    if chose_work_dir:
        print(f"work dir: {config.work_dir}", flush=True)
    return argparse.Namespace(config=config, verbose=verbose)


def main(args):
    config = args.config
    from semseg.callbacks import TrainingDiverged
    from semseg.distribute import is_chief_process
    from semseg.training import train

    try:
        train(config)
    except TrainingDiverged as error:
        sys.exit(f"error: {error}")
    if not is_chief_process():
        print("worker done; the chief wrote the work dir")
        return
    best_file = config.work_path / "checkpoints" / "best.json"
    if best_file.is_file():
        best = json.loads(best_file.read_text())
        print(f"best {best['monitor']} {best['value']:.4f} at epoch {best['epoch']}")
    print(f"checkpoints: {config.work_path / 'checkpoints'}")


if __name__ == "__main__":
    run_command(main, parse_args)
