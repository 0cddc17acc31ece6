"""Data-parallel training with `tf.distribute`: one GPU, several GPUs, several machines.

Kept whole (~400 lines): the strategies, the chief/worker roles and the collectives they
share change together.

`distribution_for(multi_gpu, cpu_devices)` picks the strategy of a run:

| how the run starts                     | strategy                             | replicas |
|----------------------------------------|--------------------------------------|----------|
| `train.py ...`                         | the default (one device)             | 1        |
| `train.py --multi_gpu ...`             | `MirroredStrategy`, all visible GPUs | GPUs     |
| `train.py --multi_gpu --cpu_devices 2` | `MirroredStrategy`, 2 logical CPUs   | 2        |
| `TF_CONFIG=... train.py ...` (each)    | `MultiWorkerMirroredStrategy`        | all GPUs |

Every replica runs `--batch_size` examples per step (the global batch is
`batch_size x replicas`), its gradients are summed over the replicas, and its
batch-norm statistics are computed over the global batch (synchronised batch
norm, `synchronize_batch_norm`, in every `--multi_gpu` or multi-worker run,
even with one replica), so two workers with batch 4 compute what one
`--multi_gpu` process with batch 8 computes. Input is sharded by data: every worker runs the
same seeded pipeline and keeps its own slice of each global batch, so the
per-example augmentation does not depend on the worker.

Every strategy takes the batches of the training pipeline in the same order
(see `build_from_element_spec`), and the losses of `semseg.losses.losses` average over
the pixels of the global batch, so a run on one device computes the weights
that a run on several computes with the same global batch and seed, up to
floating-point summation order (`train.py --float64` makes that visible:
tests/semseg/train/test_training.py finds two workers within 2e-4 of one process).

In a multi-worker run only the chief (task `chief:0`, or `worker:0` when the
cluster has no chief) writes into the work dir; the other workers write into a
temporary folder that is removed at the end, and take the chief's weights and
optimizer state before training starts (`broadcast_from_chief`), so only the
chief's machine needs the work dir (and the `--init_from` checkpoint).

`--cpu_devices N` splits the CPU into N logical devices: it exercises the
multi-device code path on a machine without GPUs (tests, `bench/distributed.py`);
it does not make training faster.

Example:

    distribution = distribution_for(multi_gpu=True)
    with distribution.strategy.scope():
        model = build_model(...)
        synchronize_batch_norm(model)
        model.compile(...)
"""

import dataclasses
import functools
import json
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from semseg.base.errors import InputError

logger = logging.getLogger(__name__)

LEARNING_RATE_SCALING = ("none", "linear")


class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` that Keras 3's `model.fit` can drive.

    Keras 3.15 calls `strategy.reduce` with values this strategy does not take
    (keras-team/keras#20585): a nested structure (the first data batch, to
    build the model) and scalars with `axis=0` (the metrics of each step).
    This subclass reduces each leaf of a structure on its own and reduces a
    scalar across replicas as if `axis=None`, which is what Keras means.
    """

    def reduce(self, reduce_op, value, axis):
        def reduce_one(leaf):
            leaf_axis = axis
            if axis is not None and self.experimental_local_results(leaf)[0].shape.rank == 0:
                leaf_axis = None
            return super(KerasMultiWorkerMirroredStrategy, self).reduce(reduce_op, leaf, leaf_axis)

        return tf.nest.map_structure(reduce_one, value)


@dataclasses.dataclass
class Distribution:
    """The distribution strategy of a run and this process's place in it.

    Attributes:
        strategy: the `tf.distribute.Strategy` to build and train under.
        kind: `"single"`, `"mirrored"` or `"multi_worker"`.
        num_replicas: replicas in sync over all workers.
        num_workers: processes (machines) taking part.
        task_type: `"chief"` or `"worker"` in a multi-worker run, else `None`.
        task_id: index of this process in its task type.
        devices: names of this process's devices that hold replicas.
    """

    strategy: tf.distribute.Strategy
    kind: str
    num_replicas: int = 1
    num_workers: int = 1
    task_type: str | None = None
    task_id: int = 0
    devices: tuple = ()

    @property
    def is_chief(self):
        """Whether this process writes the work dir (always true outside multi-worker runs)."""
        return self.kind != "multi_worker" or is_chief_process()

    def describe(self):
        """One line for the log, e.g. `MirroredStrategy over 2 devices (CPU:0, CPU:1)`."""
        if self.kind == "single":
            return f"one device ({self.devices[0].split('device:')[-1]})"
        short = ", ".join(name.split("device:")[-1] for name in self.devices)
        if self.kind == "mirrored":
            return f"MirroredStrategy over {self.num_replicas} devices ({short})"
        return (
            f"MultiWorkerMirroredStrategy: {self.num_workers} workers, {self.num_replicas} "
            f"replicas; this is {self.task_type}:{self.task_id} ({short})"
        )


def tf_config():
    """The parsed `TF_CONFIG` environment variable, or `None` when it is unset or empty.

    Raises:
        InputError: when it is not JSON with a `cluster` and a `task`.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        task_type, task_id = str(task["type"]), int(task["index"])
        if task_type not in cluster or task_id >= len(cluster[task_type]):
            raise KeyError(f"{task_type}:{task_id} is not in the cluster")
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(
            'TF_CONFIG: expected JSON like {"cluster": {"worker": ["host1:port", '
            '"host2:port"]}, "task": {"type": "worker", "index": 0}} '
            f"({error}). Received: {text!r}"
        ) from error
    return config


def is_chief_process():
    """Whether this process is the chief of its `TF_CONFIG` cluster (true without one).

    The chief is task `chief:0`, or `worker:0` when the cluster has no chief.
    """
    config = tf_config()
    if config is None:
        return True
    task_type, task_id = config["task"]["type"], int(config["task"]["index"])
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in config["cluster"]


def configure_cpu_devices(count):
    """Splits the first physical CPU into `count` logical devices.

    Must run before TensorFlow initialises its devices (before the first op).

    Raises:
        InputError: when TensorFlow already runs with another number of CPU devices.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as error:
        current = len(tf.config.list_logical_devices("CPU"))
        if current != count:
            raise InputError(
                f"--cpu_devices {count}: TensorFlow already runs with {current} CPU device(s) "
                "in this process; set it before anything else uses TensorFlow (train.py does)"
            ) from error


def distribution_for(multi_gpu=False, cpu_devices=None):
    """Creates the strategy of a run: call it before any other TensorFlow work.

    Args:
        multi_gpu: mirror the model over all visible GPUs (`--multi_gpu`).
        cpu_devices: `None`, or split the CPU into this many logical devices and
            mirror over them (`--cpu_devices`, needs `multi_gpu`).

    Returns:
        `Distribution`. With `TF_CONFIG` set, a multi-worker one.

    Raises:
        InputError: for `cpu_devices` without `multi_gpu` or with `TF_CONFIG`,
            or a malformed `TF_CONFIG`.
    """
    cluster = tf_config()
    if cpu_devices is not None and not multi_gpu:
        raise InputError("--cpu_devices splits the CPU for --multi_gpu; add --multi_gpu")
    if cluster is not None:
        if cpu_devices is not None:
            raise InputError(
                "--cpu_devices cannot be combined with TF_CONFIG: each worker of a "
                "multi-worker run uses its GPUs, or its CPU as one device"
            )
        strategy = KerasMultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        workers = sum(
            len(addresses)
            for task_type, addresses in cluster["cluster"].items()
            if task_type in ("chief", "worker")
        )
        return Distribution(
            strategy=strategy,
            kind="multi_worker",
            num_replicas=strategy.num_replicas_in_sync,
            num_workers=workers,
            task_type=resolver.task_type,
            task_id=int(resolver.task_id),
            devices=tuple(strategy.extended.worker_devices),
        )
    if not multi_gpu:
        gpus = tf.config.list_logical_devices("GPU")
        device = (gpus or tf.config.list_logical_devices("CPU"))[0].name
        return Distribution(strategy=tf.distribute.get_strategy(), kind="single", devices=(device,))
    if cpu_devices is not None:
        configure_cpu_devices(cpu_devices)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    else:
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
        if not devices:
            logger.warning("--multi_gpu: no GPU is visible; training on the CPU as one replica")
            devices = [tf.config.list_logical_devices("CPU")[0].name]
    strategy = tf.distribute.MirroredStrategy(devices)
    return Distribution(
        strategy=strategy,
        kind="mirrored",
        num_replicas=strategy.num_replicas_in_sync,
        devices=tuple(devices),
    )


def scaled_learning_rate(learning_rate, num_replicas, rule):
    """The learning rate for `num_replicas` replicas under `--scale_lr RULE`.

    `none` keeps it; `linear` multiplies it by the number of replicas, i.e. by
    global batch / `--batch_size` (Goyal et al. 2017,
    https://arxiv.org/abs/1706.02677): the rate given is the one for one
    replica's batch.
    """
    if rule not in LEARNING_RATE_SCALING:
        raise InputError(
            f"--scale_lr must be one of {', '.join(LEARNING_RATE_SCALING)}. Received: {rule!r}"
        )
    return learning_rate * num_replicas if rule == "linear" else learning_rate


def build_from_element_spec(model, element_spec):
    """Makes `model.fit` build `model` from the data's shapes, not from a batch of it.

    Under a distribution strategy Keras 3.15 builds the compiled model from a
    first batch it pulls off the training data, then starts the data over.
    The pipeline of `semseg.data.data.train_dataset` reshuffles for every new
    iterator, so training would begin with its second order, or a later one
    when the dropped iterator had prefetched past a whole pass (which depends
    on timing). Building from the element spec (shapes and dtypes) pulls
    nothing: every run, distributed or not, starts with the first order.

    Args:
        model: a compiled `keras.Model`.
        element_spec: the training dataset's `element_spec`.
    """

    def symbolic_build(iterator=None, data_batch=None):
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=element_spec)

    model._maybe_symbolic_build = symbolic_build


def shard_by_data(dataset):
    """Sets auto-sharding by data: each worker reads everything and keeps its share of
    every global batch (file sharding would make each worker's order depend on it)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def synchronize_batch_norm(model):
    """Makes every `BatchNormalization` layer of `model` (nested ones too) synchronised.

    Synchronised batch norm computes the batch statistics over all replicas, so
    a batch split over replicas is normalised as one batch. The layers get
    `synchronized=True` and compute their moments in two passes over all
    replicas (`synchronized_moments`): Keras' own synchronised moments,
    `E[x^2] - E[x]^2`, lose most digits when a channel's mean is large against
    its spread (at the 1/64 branch of DDRNet, early in training), so their
    result would depend on how the batch is split. Outside a distribution
    strategy the layers are plain batch norm. Weights, parameter counts and
    the saved `.keras` config stay those of the model.

    Returns:
        Number of layers changed.
    """
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            layer._moments = functools.partial(_batch_norm_moments, layer)
            count += 1
    return count


def _batch_norm_moments(layer, inputs, mask):
    if mask is not None:  # masked moments are Keras' (not synchronised); no model uses masks
        return type(layer)._moments(layer, inputs, mask)
    return synchronized_moments(inputs, layer._reduction_axes)


def synchronized_moments(inputs, axes):
    """Mean and variance of `inputs` over `axes` and over all replicas, in two passes.

    The global mean comes first (an all-reduce of sums and counts), then the
    mean squared deviation from it (a second all-reduce): the same numbers as
    `tf.nn.moments` of the whole global batch on one device, up to summation
    order. Gradients flow through both all-reduces. Outside a replica context
    (no strategy running) it is `tf.nn.moments`.

    Args:
        inputs: float32 tensor.
        axes: list of the axes to reduce.

    Returns:
        `(mean, variance)` without the reduced axes.
    """
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.nn.moments(inputs, axes)
    shape = tf.shape(inputs)
    count = tf.cast(tf.reduce_prod(tf.gather(shape, axes)), inputs.dtype)
    local_sum = tf.reduce_sum(inputs, axis=axes, keepdims=True)
    total_sum, total_count = context.all_reduce(tf.distribute.ReduceOp.SUM, [local_sum, count])
    mean = total_sum / tf.maximum(total_count, 1.0)
    # As tf.nn.moments: the deviations' gradient through the mean sums to zero.
    deviations = tf.reduce_sum(
        tf.math.squared_difference(inputs, tf.stop_gradient(mean)), axis=axes, keepdims=True
    )
    variance = context.all_reduce(tf.distribute.ReduceOp.SUM, deviations) / tf.maximum(
        total_count, 1.0
    )
    return tf.squeeze(mean, axes), tf.squeeze(variance, axes)


def broadcast_from_chief(strategy, values):
    """The chief's `values` on every worker of a multi-worker run (a collective).

    Every worker must call it at the same point with arrays of the same shapes
    and dtypes. The arrays of replica 0 (on the chief) are summed with zeros
    from the other replicas, which is exact; integers and booleans travel as
    float64 (exact below 2^53).

    Args:
        strategy: the run's strategy.
        values: list of numpy arrays.

    Returns:
        list of numpy arrays: the chief's, with the dtypes of `values`.
    """
    values = [np.asarray(value) for value in values]
    sent = [value.astype(np.float64) if value.dtype.kind in "iub" else value for value in values]

    @tf.function
    def broadcast(tensors):
        def replica_fn(tensors):
            context = tf.distribute.get_replica_context()
            is_first = tf.equal(context.replica_id_in_sync_group, 0)
            local = [tf.where(is_first, tensor, tf.zeros_like(tensor)) for tensor in tensors]
            # One all-reduce per dtype: a batched all-reduce packs its tensors into one.
            reduced = [None] * len(local)
            for dtype in sorted({tensor.dtype for tensor in local}, key=lambda dtype: dtype.name):
                indices = [i for i, tensor in enumerate(local) if tensor.dtype == dtype]
                sums = context.all_reduce(tf.distribute.ReduceOp.SUM, [local[i] for i in indices])
                for index, value in zip(indices, sums):
                    reduced[index] = value
            return reduced

        return strategy.run(replica_fn, args=(tensors,))

    results = broadcast([tf.convert_to_tensor(value) for value in sent])
    return [
        np.asarray(strategy.experimental_local_results(result)[0]).astype(value.dtype)
        for value, result in zip(values, results)
    ]


def broadcast_variables_from_chief(strategy, variables):
    """Assigns the chief's values of Keras `variables` on every worker.

    See `broadcast_from_chief`; every worker calls it with the same variables.
    """
    values = broadcast_from_chief(strategy, [variable.numpy() for variable in variables])
    for variable, value in zip(variables, values):
        variable.assign(value)
