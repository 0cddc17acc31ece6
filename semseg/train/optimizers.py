"""The optimiser of `train.py`: SGD with momentum, AdamW or Adam over the run's
learning-rate schedule (`semseg.train.schedules`), with `--ema` an average of the weights.

`--ema M` keeps an exponential moving average of the trainable weights inside the
optimiser's step (Keras's `use_ema`), with a warm-up: at step `t` the average moves with
momentum `min(M, (1 + t) / (10 + t))` (0 at the first step), as timm's and the TF Model
Garden's averages do. Keras's own average starts with momentum `M` from the first step's
weights, so after `t` steps they still weigh `M ** t`: 37% after 1000 steps at
`M = 0.999`, which makes a short run's average mostly its first weights. With the
warm-up the average follows the weights closely at first and spans about `1 / (1 - M)`
steps once `t` is large. `semseg.train.callbacks.AveragedWeights` puts the average in the
model for validation and the checkpoints.

Example:

    optimizer = build_optimizer(config, total_steps=13500, warmup_steps=135)
"""

import keras
from keras import ops

from semseg.train.schedules import learning_rate_schedule

# `(1 + t) / (WARMUP + t)`: the average's momentum at step t until it reaches --ema.
EMA_WARMUP_STEPS = 10


class _WarmAverage:
    """Mixin of a Keras optimiser: its weight average (`use_ema`) warms up."""

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self.use_ema:
            return
        step = ops.cast(self.iterations, "float32")
        warm = ops.minimum(self.ema_momentum, (1.0 + step) / (EMA_WARMUP_STEPS + step))
        # The first step's average is its weights, as in Keras (the slots start at zero).
        warm = ops.where(ops.equal(self.iterations, 0), 0.0, warm)
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                momentum = ops.cast(warm, variable.dtype)
                average.assign(momentum * average + (1.0 - momentum) * variable)


@keras.saving.register_keras_serializable(package="semseg")
class AveragingSGD(_WarmAverage, keras.optimizers.SGD):
    """`keras.optimizers.SGD` whose weight average warms up (module docstring)."""


@keras.saving.register_keras_serializable(package="semseg")
class AveragingAdamW(_WarmAverage, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` whose weight average warms up (module docstring)."""


@keras.saving.register_keras_serializable(package="semseg")
class AveragingAdam(_WarmAverage, keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose weight average warms up (module docstring)."""


def build_optimizer(config, total_steps, learning_rate=None, warmup_steps=0):
    """SGD with momentum, AdamW or Adam with the configured schedule and weight decay.

    Args:
        config: `RunConfig`.
        total_steps: int, optimiser steps of the whole run (the schedule's length).
        learning_rate: peak rate; `None` means `config.learning_rate` (pass the
            rate scaled for the replicas).
        warmup_steps: int, steps of linear warm-up.
    """
    rate = config.learning_rate if learning_rate is None else learning_rate
    schedule = learning_rate_schedule(config.schedule, rate, total_steps, warmup_steps)
    weight_decay = config.weight_decay or None
    if config.ema:
        sgd, adamw, adam = AveragingSGD, AveragingAdamW, AveragingAdam
        options = {"use_ema": True, "ema_momentum": config.ema}
    else:
        sgd, adamw, adam = keras.optimizers.SGD, keras.optimizers.AdamW, keras.optimizers.Adam
        options = {}
    if config.optimizer == "sgd":
        return sgd(schedule, momentum=config.momentum, weight_decay=weight_decay, **options)
    if config.optimizer == "adamw":
        return adamw(schedule, weight_decay=config.weight_decay, **options)
    return adam(schedule, weight_decay=weight_decay, **options)
