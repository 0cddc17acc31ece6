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

    # Fine-tune from MMSegmentation's ImageNet PIDNet-S, fetched once by name (--model implied)
    python train.py --dataset full_semantic/mydata --weights pidnet_s_imagenet --aux_weight 0.4 \
        --image_size 512 512 --work_dir runs/mydata_pidnet_s

    # Fine-tune a Cityscapes run on CamVid: matching layers load, the classifier does not
    python train.py --dataset full_semantic/camvid --init_from runs/cityscapes \
        --learning_rate 0.005 --image_size 360 480 --work_dir runs/camvid_finetuned

Rerunning an interrupted (even SIGKILLed) command resumes it from its last
completed epoch with the optimizer state and learning-rate schedule; a NaN loss
stops the run with exit status 1 and keeps the last good epoch. The work dir
receives config.json, checkpoints/{best,last}.keras, history.csv,
training_curves.png and TensorBoard logs (loss, mIoU, learning rate and
prediction images); eval.py and the predictors read everything from there.
See docs/SCALING.md.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.base.cli import config_parser, run_command  # noqa: E402
from semseg.config.recipes import apply_recipe  # noqa: E402
from semseg.config.run import config_from_flags  # noqa: E402
from semseg.config.run_config import RunConfig  # noqa: E402


def parse_args(argv=None):
    """The `RunConfig` of the flags, the `--recipe` merged in, defaults resolved and checked."""
    parser = config_parser(__doc__, RunConfig)
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
    from semseg.train.callbacks import TrainingDiverged
    from semseg.train.distribute import is_chief_process
    from semseg.train.training import train

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
