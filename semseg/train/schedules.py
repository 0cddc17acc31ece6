"""Learning-rate schedules of `train.py --schedule`, with an optional linear warm-up.

| `--schedule` | learning rate at optimiser step `t` of `T`                 |
|--------------|------------------------------------------------------------|
| `poly`       | `lr * (1 - t / T) ** 0.9` (DeepLab, DDRNet, MMSegmentation) |
| `cosine`     | `lr * (1 + cos(pi * t / T)) / 2`                           |
| `constant`   | `lr`                                                       |

`T` is the whole run: `--steps`, or `--epochs x --steps_per_epoch`. A warm-up
of `W` steps (`--warmup_steps`, or `--warmup_epochs` whole epochs) multiplies
the schedule by `(t + 1) / W` during the first `W` steps, as MMSegmentation's
linear warm-up; the decay itself still counts from step 0. Schedules are
functions of the optimiser's step counter, which a resumed run restores, so
the learning rate carries on where it stopped.

Example:

    schedule = learning_rate_schedule("poly", 0.01, total_steps=20000, warmup_steps=500)
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
"""

import keras
from keras import ops

from semseg.config.run_config import SCHEDULES

POLY_POWER = 0.9


@keras.saving.register_keras_serializable(package="semseg")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Scales a schedule by `min(1, (step + 1) / warmup_steps)`.

    Args:
        schedule: a `LearningRateSchedule` or a float (constant rate).
        warmup_steps: int >= 1, steps until the full rate.
    """

    def __init__(self, schedule, warmup_steps):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(
                "`warmup_steps` must be a positive integer. "
                f"Received: warmup_steps={warmup_steps!r}"
            )
        self.schedule = schedule
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            rate = ops.cast(self.schedule(step), "float32")
        else:
            rate = ops.convert_to_tensor(float(self.schedule), "float32")
        return rate * ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))

    def get_config(self):
        schedule = self.schedule
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            schedule = keras.optimizers.schedules.serialize(schedule)
        return {"schedule": schedule, "warmup_steps": self.warmup_steps}


def learning_rate_schedule(name, learning_rate, total_steps, warmup_steps=0):
    """The learning rate of a run as a Keras schedule (or a float for a constant one).

    Args:
        name: `"poly"`, `"cosine"` or `"constant"`.
        learning_rate: float, the peak rate.
        total_steps: int, optimiser steps of the whole run.
        warmup_steps: int >= 0, steps of linear warm-up (0: none).

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule` or a float.
    """
    if name not in SCHEDULES:
        raise ValueError(f"`name` must be one of {SCHEDULES}. Received: name={name!r}")
    if name == "poly":
        schedule = keras.optimizers.schedules.PolynomialDecay(
            learning_rate, decay_steps=total_steps, end_learning_rate=0.0, power=POLY_POWER
        )
    elif name == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total_steps)
    else:
        schedule = learning_rate
    if warmup_steps:
        return LinearWarmup(schedule, warmup_steps)
    return schedule
