"""What a run will hold in its device's memory, said in one line before the first step, and where its training
images go (--input auto|device|host).

The estimate adds up, per replica, from the built networks and optimizers:
- weights: every variable of the networks (the frozen Stage-I generator's too), at its own dtype;
- gradients: one per trainable weight, float32;
- optimizer: the optimizers' variables as built (Adam's two slots per weight, a third for the generator with --g-ema);
- activations: the forward outputs that the backward pass keeps, counted as every layer's output (the models'
  inputs included) from the built models' output shapes, at the dtype each layer computes in: the generator's for
  the replica's batch, the discriminator's for three times it (it sees the real, wrong and fake images in one call).
  The frozen Stage-I generator's outputs are not kept (nothing is differentiated through it);
- input: with --input device the split's images and embeddings (one copy per replica); with --input host the
  HOST_BATCHES_ON_DEVICE batches prefetched to the device, at their stored size.
TensorFlow needs more than this (convolution workspace, the backward pass's temporaries, casts, its allocator's
slack): on this project's 2-core Xeon the resident memory grew during the first steps by 1.6-2.8x the activations
and gradients counted here (Stage-I and Stage-II, float32 and bf16, XLA on and off). So the estimate is a floor: a
run whose estimate does not fit in the device's free memory cannot run, and is refused before it starts.
"""

import dataclasses
import math

import numpy as np

from stackgan.cli import UserError
from stackgan.device_memory import format_bytes
from stackgan.runtime import PRECISION_LABELS
from stackgan.training.input import HOST_BATCHES_ON_DEVICE

# --input auto keeps the images on the device only where their copies take at most this share of its free memory.
DEVICE_SHARE = 0.5


def variable_bytes(variables):
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)


def activation_bytes_per_example(model):
    """Bytes of every layer output of a built Keras model for one example, at each output's dtype."""
    import keras

    total = 0
    for layer in model.layers:
        for tensor in keras.tree.flatten(layer.output):
            total += math.prod(tensor.shape[1:]) * np.dtype(tensor.dtype).itemsize
    return total


def split_bytes(split):
    """What a DeviceSplit holds: the uint8 images and the float32 embeddings."""
    return split.images.nbytes + math.prod(split.embeddings.shape) * 4


def host_batch_bytes(split, batch):
    """One gathered host batch: real and wrong images at their stored size, and the embeddings."""
    return batch * (2 * math.prod(split.images.shape[1:]) + split.embeddings.shape[-1] * 4)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Bytes per replica."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    input: int
    placement: str
    batch: int  # per replica
    precision: str
    replicas: int = 1

    @property
    def total(self):
        return self.weights + self.gradients + self.optimizer + self.activations + self.input

    def needed(self, memory):
        """Bytes the run needs of `memory`: replicas on a CPU share its RAM, GPUs each hold their own."""
        return self.total * (self.replicas if memory is not None and memory.kind == "RAM" else 1)

    def parts(self):
        images = "the images on the device" if self.placement == "device" else f"{HOST_BATCHES_ON_DEVICE} host batches"
        return (
            f"weights {format_bytes(self.weights)}, gradients {format_bytes(self.gradients)}, "
            f"optimizer {format_bytes(self.optimizer)}, activations {format_bytes(self.activations)} "
            f"(batch {self.batch}, {PRECISION_LABELS[self.precision]}), input {format_bytes(self.input)} ({images})"
        )

    def line(self, memory):
        """The start-up's memory line."""
        scope = f" per replica x {self.replicas}" if self.replicas > 1 else ""
        where = "free memory unknown" if memory is None else memory.describe()
        return f"Memory estimate: at least {format_bytes(self.total)}{scope} ({self.parts()}) | {where}"


def estimate(trainer, split, placement, replicas=1):
    """The Estimate of a StackGANTrainer's run on `split` with --input `placement`."""
    gen, dis = trainer.gen, trainer.dis
    networks = [gen, dis] + ([trainer.stage1_gen] if trainer.stage1_gen is not None else [])
    batch = -(-trainer.global_batch_size // replicas)
    activations = (activation_bytes_per_example(gen) + 3 * activation_bytes_per_example(dis)) * batch
    return Estimate(
        weights=sum(variable_bytes(m.weights) for m in networks),
        gradients=variable_bytes(gen.trainable_variables) + variable_bytes(dis.trainable_variables),
        optimizer=variable_bytes(trainer.g_opt.variables) + variable_bytes(trainer.d_opt.variables),
        activations=activations,
        input=split_bytes(split) if placement == "device" else HOST_BATCHES_ON_DEVICE * host_batch_bytes(split, batch),
        placement=placement,
        batch=batch,
        precision=trainer.runtime.precision,
        replicas=replicas,
    )


def choose_placement(requested, on_device, memory):
    """(device or host, reason) for --input `requested`, given the Estimate with the images on the device and the
    device's DeviceMemory (None: unknown)."""
    if requested in ("device", "host"):
        return requested, "requested"
    if requested != "auto":
        raise UserError(f"unknown --input {requested!r}: expected auto, device or host")
    if memory is None:
        return "host", "auto: the device's free memory is unknown"
    copies = on_device.input * on_device.replicas
    what = f"the {format_bytes(copies)} of images and embeddings" + (
        f" ({on_device.replicas} copies)" if on_device.replicas > 1 else ""
    )
    free = f"{format_bytes(memory.free)} free {memory.where}"
    if copies > DEVICE_SHARE * memory.free:
        return "host", f"auto: {what} would take more than half of the {free}"
    if on_device.needed(memory) > memory.free:
        needed = format_bytes(on_device.needed(memory))
        return "host", f"auto: with them on the device the run would need at least {needed} of the {free}"
    return "device", f"auto: {what} fit in half of the {free}"


def check_fits(chosen, memory):
    """Refuse, in one line, a run whose estimate does not fit in the device's known free memory."""
    if memory is None or chosen.needed(memory) <= memory.free:
        return
    where = "GPU memory" if memory.kind == "GPU" else "RAM"
    host = "--input host (the images stay on the host), " if chosen.placement == "device" else ""
    raise UserError(
        f"the run needs at least {format_bytes(chosen.needed(memory))} of {where} ({chosen.parts()}) but "
        f"{format_bytes(memory.free)} is free: pass a smaller --batch-size, {host}or smaller --gf-dim/--df-dim"
    )


def plan_input(requested, trainer, split, memory, replicas=1):
    """(placement, reason, Estimate) of a run: where its images go (--input `requested`) and what it will hold."""
    on_device = estimate(trainer, split, "device", replicas)
    placement, reason = choose_placement(requested, on_device, memory)
    chosen = on_device if placement == "device" else estimate(trainer, split, "host", replicas)
    return placement, reason, chosen
