"""Time the training step: images per second of the project's step, and optionally the chapter's loop.

    python bench.py --stage 1 --batch-size 64 --steps 20 --baseline
    python bench.py --stage 1 --batch-size 32 --gf-dim 32 --df-dim 16 --data-dir data/synthetic
    python bench.py --stage 1 --pipeline-only --data-dir data/synthetic
    python bench.py --stage 2 --pipeline-only --data-dir data/synthetic --input host
    python bench.py --stage 2 --batch-size 64 --mixed-precision bf16 --memory-only

Prints one JSON line. The step runs as in training (StackGANTrainer.train_steps, --steps-per-call steps per
compiled call), fed uint8 batches: random ones, or with --data-dir the real input pipeline.
--pipeline-only times the input pipeline alone; with --input host, the batches read from the memory-mapped
cache at their stored size (what the step crops) and, for comparison, cropped on the host too. --baseline also
times, in the same run, the chapter's loop ported to Keras 3 with the least change that makes it train (G.predict
for the fakes, the compressor's predict, three D.train_on_batch calls with D.trainable toggled, one adversarial
train_on_batch), in float32 as the chapter has it (--mixed-precision applies to our step only).

--memory-only builds the networks and prints, for a split of --images images (CUB's training split by
default), the start-up's memory estimate and what --input auto would pick on whole free GPUs of --gpu-gib GiB;
it times nothing (the estimate is a floor: see stackgan/training/input.py).

--backend jax times the training step of the same Keras networks (stackgan/models.py), optimizers and losses
under Keras' JAX backend, jitted with stateless_call (stackgan.benchmark.JaxTrainer), on random batches: for
machines that have JAX but no TensorFlow, such as our GPU benchmark machine (docs/gpu_bench.sh). It also prints
the step's FLOPs counted from the networks, the TFLOP/s reached and, on a known GPU or with --peak-tflops, the
share of the bf16 peak. --xla, --steps-per-call and --conv-gradients do not apply (JAX compiles the whole step).
"""

import argparse
import json
import os
import subprocess
import sys

from stackgan import benchmark
from stackgan.cli import ArgumentParser, UserError, non_negative_int, positive_int, run_main
from stackgan.config import IMAGE_SIZE, NETWORK_DEFAULTS, StageConfig, stored_size


def make_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--stage", type=int, choices=[1, 2], default=1)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--steps", type=positive_int, default=20, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=positive_int, default=3, help="untimed steps first (tracing, autotuning)")
    p.add_argument("--steps-per-call", type=positive_int, default=1, help="training steps per compiled call")
    p.add_argument("--gf-dim", type=positive_int, default=NETWORK_DEFAULTS["gf_dim"])
    p.add_argument("--df-dim", type=positive_int, default=NETWORK_DEFAULTS["df_dim"])
    p.add_argument(
        "--mixed-precision",
        choices=["auto", "off", "bf16", "fp16"],
        default="auto",
        help="auto: bf16 only where it is native (see stage1.py --help), else float32",
    )
    p.add_argument(
        "--xla",
        choices=["auto", "on", "off"],
        default="auto",
        help="compile the step with XLA; auto: on, except for bf16 on a CPU (as in training)",
    )
    p.add_argument(
        "--conv-gradients",
        choices=["auto", "forward", "native"],
        default="auto",
        help="how convolutions compute their gradients: forward convolutions (faster where the CPU's backward "
        "kernels are slow) or the framework's own; auto: what training picks for this hardware",
    )
    p.add_argument("--baseline", action="store_true", help="also time the chapter's loop and report the ratio")
    p.add_argument("--data-dir", help="feed the step from this dataset's input pipeline instead of random tensors")
    p.add_argument("--pipeline-only", action="store_true", help="time the input pipeline of --data-dir alone")
    p.add_argument(
        "--input",
        choices=["device", "host"],
        default="device",
        help="with --data-dir: where the images are gathered from (as stage1.py --input)",
    )
    p.add_argument("--memory-only", action="store_true", help="print the memory estimate per GPU size; time nothing")
    p.add_argument("--images", type=positive_int, default=8855, help="with --memory-only: training images")
    p.add_argument(
        "--gpu-gib", type=positive_int, nargs="+", default=[8, 12, 24, 80], help="with --memory-only: GPU sizes"
    )
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--backend",
        choices=["tensorflow", "jax"],
        default="tensorflow",
        help="jax: time the same networks' step jitted under Keras' JAX backend, on random batches",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        help="with --backend jax: the device's bf16 peak in TFLOP/s, for the share of it the step reaches "
        "(default: a data-sheet table of NVIDIA GPUs)",
    )
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)
    if args.backend == "jax":
        return main_jax(args, argv)
    if args.pipeline_only and not args.data_dir:
        raise UserError("--pipeline-only times the input pipeline of a dataset: give --data-dir (e.g. data/synthetic)")
    from stackgan.runtime import Runtime

    runtime = Runtime.choose(args.mixed_precision, args.xla)
    if args.memory_only:
        result = estimate_memory(args, runtime)
        print(json.dumps(result))
        return result
    if args.conv_gradients != "auto":
        runtime.kernels, runtime.kernels_reason = args.conv_gradients, "requested"
    result = dict(
        stage=args.stage,
        batch_size=args.batch_size,
        device=runtime.device,
        input="pipeline" if args.data_dir else "random",
        steps=args.steps,
    )
    if args.data_dir:
        result["images_on"] = args.input
    split = train_split(args) if args.data_dir else None
    if args.pipeline_only:
        result.update(backend="tf.data", **time_input(args, split))
        print(json.dumps(result))
        return result
    result.update(time_our_step(args, runtime, split))
    if args.baseline:
        base_seconds = time_chapter_loop(args)
        result["baseline_mixed_precision"] = "off"
        result["baseline_img_per_s"] = benchmark.rate(args.batch_size, args.steps, base_seconds)
        result["speedup"] = round(base_seconds / result.pop("seconds"), 2)
    result.pop("seconds", None)
    print(json.dumps(result))
    return result


def train_split(args):
    from stackgan.datasets.cache import load_dataset

    return load_dataset(args.data_dir, "train", stored_size(IMAGE_SIZE[args.stage], True))


def time_input(args, split):
    """Images per second of the plans alone, and of the batches they give: --input device: assembled on the host by
    tf.data from a DeviceSplit; --input host: read from the cache at their stored size (the step crops them), and
    also cropped and flipped on the host."""
    from stackgan.training import input as training_input

    size = IMAGE_SIZE[args.stage]

    def rate_of(dataset):
        return benchmark.rate(args.batch_size, args.steps, benchmark.time_pipeline(dataset, args.warmup, args.steps))

    plans = training_input.make_plan_dataset(split, args.batch_size, size, seed=args.seed).repeat()
    result = dict(img_per_s=rate_of(plans))
    if args.input == "device":
        batches = training_input.make_dataset(split, args.batch_size, size, seed=args.seed)
        result["assembled_on_host_img_per_s"] = rate_of(batches.repeat())
        return result
    batches = training_input.TrainingInput(split, size, args.batch_size, True, args.seed, placement="host")
    result["host_read_img_per_s"] = rate_of(batches.dataset().repeat())
    cropped = training_input.make_dataset(split, args.batch_size, size, seed=args.seed, placement="host")
    result["host_read_and_cropped_img_per_s"] = rate_of(cropped.repeat())
    return result


def build_trainer(args, runtime, split=None):
    """(StageConfig, StackGANTrainer) of the flags: Stage-II on a frozen, untrained Stage-I generator; its input
    from `split` (placed as --input says) when given."""
    from stackgan.layers import Kernels
    from stackgan.training.step import StackGANTrainer

    config = StageConfig(
        stage=args.stage,
        batch_size=args.batch_size,
        gf_dim=args.gf_dim,
        df_dim=args.df_dim,
        seed=args.seed,
        input=getattr(args, "input", "auto"),
    )
    with runtime.policy():
        stage1_gen = benchmark.frozen_stage1(config.network(), Kernels(runtime.kernels)) if args.stage == 2 else None
    return config, StackGANTrainer(config, runtime, stage1_gen, split)


def time_our_step(args, runtime, split):
    config, trainer = build_trainer(args, runtime, split)
    if split is None:
        dataset = benchmark.random_dataset(args.stage, args.batch_size, args.seed)
    else:
        dataset = trainer.input.dataset().repeat()
    seconds = benchmark.time_trainer(trainer, dataset, args.warmup, args.steps, args.steps_per_call)
    return dict(
        gf_dim=args.gf_dim,
        df_dim=args.df_dim,
        mixed_precision=runtime.precision,
        precision_reason=runtime.precision_reason,
        xla=runtime.xla,
        conv_gradients=runtime.kernels,
        steps_per_call=args.steps_per_call,
        backend="tensorflow",
        img_per_s=benchmark.rate(args.batch_size, args.steps, seconds),
        seconds=seconds,
    )


def estimate_memory(args, runtime):
    """The memory line's numbers for --images training images, and --input auto's choice on each --gpu-gib card."""
    from stackgan.runtime import GIB, DeviceMemory
    from stackgan.training import input as training_input

    config, trainer = build_trainer(args, runtime)
    size = stored_size(IMAGE_SIZE[args.stage], True)
    split = benchmark.split_shaped(args.images, size, config.network()["embedding_dim"])
    estimates = {where: training_input.estimate(trainer, split, where) for where in ("device", "host")}
    cards = {}
    for gib in args.gpu_gib:
        card = DeviceMemory(gib * GIB, gib * GIB, "GPU")
        placement, _ = training_input.choose_placement("auto", estimates["device"], card)
        chosen = estimates[placement]
        cards[f"{gib} GiB"] = dict(
            input=placement, needs_gib=round(chosen.total / GIB, 2), fits=chosen.needed(card) <= card.free
        )
    return dict(
        stage=args.stage,
        batch_size=args.batch_size,
        gf_dim=args.gf_dim,
        df_dim=args.df_dim,
        mixed_precision=runtime.precision,
        images=args.images,
        estimate_gib={where: round(e.total / GIB, 2) for where, e in estimates.items()},
        line=estimates["host"].line(None),
        cards=cards,
    )


def time_chapter_loop(args):
    """Seconds for --steps of the chapter's loop as written: float32, Keras' own layers."""
    from stackgan.layers import CHAPTER_KERNELS
    from stackgan.runtime import dtype_policy

    config = dict(NETWORK_DEFAULTS, gf_dim=args.gf_dim, df_dim=args.df_dim)
    with dtype_policy("off"):
        stage1_gen = benchmark.frozen_stage1(config, CHAPTER_KERNELS) if args.stage == 2 else None
        step = benchmark.chapter_loop_step(config, args.stage, args.batch_size, stage1_gen)
        batches = benchmark.random_batches(args.stage, args.batch_size, args.seed, lambda a: a)
        return benchmark.time_each_step(step, batches, args.warmup, args.steps)


def main_jax(args, argv):
    """--backend jax: JaxTrainer's step (stackgan/benchmark.py) on random batches. Keras must load its JAX backend;
    where this process already imported Keras with another, bench.py runs again in a fresh process."""
    if args.baseline or args.data_dir or args.memory_only or args.pipeline_only:
        raise UserError(
            "--backend jax times the step on random batches only: drop --baseline, --data-dir, --memory-only, --pipeline-only"
        )
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != "jax":
        return run_fresh_with_jax(argv)
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import jax.numpy as jnp
    import keras

    from stackgan import runtime

    device = jax.devices()[0]
    gpus = []
    if device.platform == "gpu":
        capability = tuple(int(v) for v in str(getattr(device, "compute_capability", "0.0")).split(".")[:2])
        gpus = [{"name": device.device_kind, "compute_capability": capability}]
    precision, reason = runtime.choose_precision(
        args.mixed_precision, gpus, runtime.cpu_info()["flags"], runtime.onednn_max_isa_env()
    )
    config = StageConfig(
        stage=args.stage, batch_size=args.batch_size, gf_dim=args.gf_dim, df_dim=args.df_dim, seed=args.seed
    )
    keras.utils.set_random_seed(args.seed)
    with runtime.dtype_policy(precision):
        stage1_gen = benchmark.frozen_stage1(config.network()) if args.stage == 2 else None
    trainer = benchmark.JaxTrainer(config, precision, stage1_gen)
    batches = benchmark.random_batches(args.stage, args.batch_size, args.seed, jnp.asarray)
    seconds = benchmark.time_each_step(trainer.train_step, batches, args.warmup, args.steps)
    flops = benchmark.step_flops(trainer.gen, trainer.dis, stage1_gen, args.batch_size)
    xla_flops = trainer.xla_flops(batches[0])
    achieved = flops * args.steps / seconds / 1e12
    peak = args.peak_tflops or (benchmark.bf16_peak_tflops(device.device_kind) if gpus else None)
    result = dict(
        stage=args.stage,
        batch_size=args.batch_size,
        gf_dim=args.gf_dim,
        df_dim=args.df_dim,
        mixed_precision=precision,
        precision_reason=reason,
        xla=True,
        input="random",
        device=f"{len(jax.devices())}x {device.device_kind}",
        backend="jax",
        steps=args.steps,
        img_per_s=benchmark.rate(args.batch_size, args.steps, seconds),
        step_tflop=float(f"{flops / 1e12:.4g}"),
        xla_step_tflop=float(f"{xla_flops / 1e12:.4g}") if xla_flops else None,
        tflop_per_s=float(f"{achieved:.4g}"),
        bf16_peak_tflop_per_s=peak,
        share_of_bf16_peak=float(f"{achieved / peak:.4g}") if peak else None,
    )
    print(json.dumps(result))
    return result


def run_fresh_with_jax(argv):
    """bench.py with `argv` in a fresh Python with KERAS_BACKEND=jax; its JSON line, printed and returned."""
    command = [sys.executable, os.path.abspath(__file__), *argv]
    done = subprocess.run(command, env=dict(os.environ, KERAS_BACKEND="jax"), stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise UserError(f"bench.py --backend jax, run afresh with KERAS_BACKEND=jax, stopped (exit {done.returncode})")
    line = done.stdout.strip().splitlines()[-1]
    print(line)
    return json.loads(line)


if __name__ == "__main__":
    run_main(main)
