"""What a run holds in memory: the device-memory probe's parsers (stackgan.device_memory), the estimate from the built
networks, --input auto's choice, the memory line and the refusal with faked device memory (stackgan.training.memory),
and a COCO-sized split, memory-mapped from a sparse file, trained on the host path in bounded memory."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import stage1
from helpers import REPO, TINY, TINY_NETWORKS, common, one_line_error
from stackgan import device_memory
from stackgan.config import StageConfig
from stackgan.datasets.cache import load_dataset
from stackgan.device_memory import GIB, MIB, DeviceMemory
from stackgan.runtime import Runtime
from stackgan.training import command, loop, memory
from stackgan.training.step import StackGANTrainer

SMI = "0, GPU-aaaa, 81559, 80000\n1, GPU-bbbb, 12288, 1000\n"


def test_nvidia_smi_gives_the_least_free_visible_gpu():
    assert device_memory.parse_nvidia_smi(SMI) == DeviceMemory(1000 * MIB, 12288 * MIB, "GPU")
    assert device_memory.parse_nvidia_smi(SMI, "0").free == 80000 * MIB  # CUDA_VISIBLE_DEVICES by index
    assert device_memory.parse_nvidia_smi(SMI, "GPU-bbbb,7").total == 12288 * MIB  # or by UUID
    assert device_memory.parse_nvidia_smi(SMI, "MIG-1234") is None  # a MIG slice: its size is not listed
    assert device_memory.parse_nvidia_smi(SMI, "5") is None
    assert device_memory.parse_nvidia_smi("No devices were found") is None
    assert device_memory.parse_nvidia_smi("0, GPU-a, [N/A], [N/A]") is None


def test_gpu_memory_is_unknown_without_a_working_nvidia_smi():
    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    assert device_memory.gpu_memory({}, run=missing) is None
    failed = lambda *a, **k: subprocess.CompletedProcess(a, 9, "", "NVIDIA-SMI has failed")
    assert device_memory.gpu_memory({}, run=failed) is None
    listed = lambda *a, **k: subprocess.CompletedProcess(a, 0, SMI, "")
    assert device_memory.gpu_memory({"CUDA_VISIBLE_DEVICES": "0"}, run=listed).free == 80000 * MIB


def test_ram_is_memavailable_capped_by_the_cgroup(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n")
    no_cgroup = tmp_path / "none"
    assert device_memory.ram_memory(meminfo, no_cgroup) == DeviceMemory(20000000 * 1024, 24000000 * 1024, "RAM")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(f"{8 * GIB}\n")
    (cgroup / "memory.current").write_text(f"{4 * GIB}\n")
    (cgroup / "memory.stat").write_text(f"anon {3 * GIB}\nfile {1 * GIB}\n")  # its page cache counts as free
    assert device_memory.ram_memory(meminfo, cgroup) == DeviceMemory(5 * GIB, 8 * GIB, "RAM")
    (cgroup / "memory.max").write_text("max\n")
    assert device_memory.ram_memory(meminfo, cgroup).free == 20000000 * 1024
    assert device_memory.ram_memory(tmp_path / "missing") is None


def tiny_trainer(batch=8, precision="off", g_ema=None):
    config = StageConfig(stage=1, batch_size=batch, g_ema=g_ema, **TINY_NETWORKS)
    return StackGANTrainer(config, Runtime.choose(precision, "off"))


def test_activations_are_every_layer_output_of_the_built_model():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.ReLU()(keras.layers.Dense(3)(inputs)))
    assert memory.activation_bytes_per_example(model) == (4 + 3 + 3) * 4
    half = keras.Model(inputs, keras.layers.Dense(3, dtype="mixed_bfloat16")(inputs))
    assert memory.activation_bytes_per_example(half) == 4 * 4 + 3 * 2


def test_the_estimate_counts_the_built_networks_and_optimizers(birds):
    split = load_dataset(birds, "train", 76)
    trainer = tiny_trainer()
    on_device = memory.estimate(trainer, split, "device")
    trainable = sum(int(np.prod(v.shape)) for v in trainer.gen.trainable_variables + trainer.dis.trainable_variables)
    assert on_device.weights == 4 * (trainer.gen.count_params() + trainer.dis.count_params())
    assert on_device.gradients == 4 * trainable
    assert 2 * 4 * trainable <= on_device.optimizer < 2 * 4 * trainable + 64  # Adam's 2 slots and a few counters
    gen_trainable = sum(int(np.prod(v.shape)) for v in trainer.gen.trainable_variables)
    with_ema = memory.estimate(tiny_trainer(g_ema=0.9), split, "device")
    assert with_ema.optimizer - on_device.optimizer == 4 * gen_trainable  # --g-ema: the generator's average
    assert on_device.input == 48 * 76 * 76 * 3 + 48 * 10 * 1024 * 4  # the images and embeddings on the device
    on_host = memory.estimate(trainer, split, "host")
    assert on_host.input == 2 * 8 * (2 * 76 * 76 * 3 + 1024 * 4)  # two batches at the stored size
    # Activations grow with the batch and hold at least the fakes and the discriminator's three image batches.
    assert memory.estimate(tiny_trainer(batch=16), split, "host").activations == 2 * on_host.activations
    assert on_host.activations > 8 * 64 * 64 * 3 * 4 * 4
    bf16 = memory.estimate(tiny_trainer(precision="bf16"), split, "host")
    assert on_host.activations / 2 < bf16.activations < on_host.activations
    assert bf16.line(None).startswith("Memory estimate: at least ") and "mixed bf16" in bf16.line(None)
    two = memory.estimate(trainer, split, "device", replicas=2)
    assert two.batch == 4 and two.activations == on_device.activations / 2 and two.input == on_device.input


def estimate_of(images, rest=GIB, replicas=1, placement="device"):
    return memory.Estimate(rest, 0, 0, 0, images, placement, 8, "off", replicas)


def test_auto_puts_the_images_on_the_device_only_where_they_fit_in_half_its_free_memory():
    gpu = DeviceMemory(10 * GIB, 12 * GIB, "GPU")
    assert memory.choose_placement("auto", estimate_of(4 * GIB), gpu) == (
        "device",
        "auto: the 4.00 GiB of images and embeddings fit in half of the 10.00 GiB free on the GPU",
    )
    assert memory.choose_placement("auto", estimate_of(6 * GIB), gpu) == (
        "host",
        "auto: the 6.00 GiB of images and embeddings would take more than half of the 10.00 GiB free on the GPU",
    )
    placement, reason = memory.choose_placement("auto", estimate_of(3 * GIB, replicas=2), gpu)  # a copy per replica
    assert placement == "host" and "6.00 GiB of images and embeddings (2 copies)" in reason
    placement, reason = memory.choose_placement("auto", estimate_of(4 * GIB, rest=7 * GIB), gpu)
    assert placement == "host" and "would need at least 11.00 GiB of the 10.00 GiB free" in reason
    ram = DeviceMemory(10 * GIB, 12 * GIB, "RAM")  # replicas on a CPU share the RAM, GPUs have their own
    assert memory.choose_placement("auto", estimate_of(GIB, rest=5 * GIB, replicas=2), ram)[0] == "host"
    assert memory.choose_placement("auto", estimate_of(GIB, rest=5 * GIB, replicas=2), gpu)[0] == "device"
    assert memory.choose_placement("auto", estimate_of(GIB), None) == (
        "host",
        "auto: the device's free memory is unknown",
    )
    assert memory.choose_placement("device", estimate_of(100 * GIB), gpu) == ("device", "requested")


def test_the_refusal_names_what_to_change():
    gpu = DeviceMemory(3 * GIB, 8 * GIB, "GPU")
    memory.check_fits(estimate_of(GIB), gpu)  # fits: no error
    memory.check_fits(estimate_of(100 * GIB), None)  # unknown memory: nothing to refuse on
    with pytest.raises(Exception, match=r"needs at least 5.00 GiB of GPU memory .* but 3.00 GiB is free") as info:
        memory.check_fits(estimate_of(4 * GIB), gpu)
    assert (
        "--batch-size" in str(info.value)
        and "--input host" in str(info.value)
        and "--gf-dim/--df-dim" in str(info.value)
    )
    with pytest.raises(Exception) as info:
        memory.check_fits(estimate_of(3 * GIB, placement="host"), gpu)
    assert "--input host" not in str(info.value) and "--batch-size" in str(info.value)


def fake_device_memory(monkeypatch, free):
    monkeypatch.setattr(device_memory, "probe", lambda gpus: DeviceMemory(free, 2 * free, "RAM"))


def test_the_start_up_lines_name_the_input_and_the_memory(birds, tmp_path, capsys, monkeypatch):
    fake_device_memory(monkeypatch, 64 * GIB)
    config = command.parse_args(1, common(birds, tmp_path / "r", tmp_path / "l") + TINY + ["--mixed-precision", "off"])
    runtime = Runtime.choose(config.mixed_precision, config.xla)
    with runtime.policy():
        run = loop.setup(config, runtime)
    out = capsys.readouterr().out.splitlines()
    start = next(line for line in out if line.startswith("Running on"))
    assert start.endswith(
        "| input device (auto: the 2.7 MiB of images and embeddings fit in half of the 64.00 GiB free RAM)"
    )
    line = out[out.index(start) + 1]
    assert line.startswith("Memory estimate: at least ") and "(the images on the device)" in line
    assert line.endswith("| 64.00 GiB free RAM (of 128.00 GiB)") and "batch 8, float32" in line
    assert run.trainer.source.__class__.__name__ == "DeviceSplit"


def test_a_run_that_cannot_fit_is_refused_in_one_line_before_it_trains(birds, tmp_path, capsys, monkeypatch):
    fake_device_memory(monkeypatch, 2 * MIB)
    args = common(birds, tmp_path / "r", tmp_path / "l") + TINY + ["--epochs", "1", "--mixed-precision", "off"]
    err = one_line_error(stage1.main, args + ["--input", "device"], capsys)
    assert "needs at least" in err and "of RAM" in err and "but 2.0 MiB is free" in err
    assert "--batch-size" in err and "--input host" in err and "--gf-dim/--df-dim" in err
    err = one_line_error(stage1.main, args, capsys)  # auto: host, which does not fit either
    assert "(2 host batches)" in err and "--input host" not in err
    assert not (tmp_path / "r" / "stage1_ckpt").exists()


def test_the_host_input_trains_through_the_command(birds, tmp_path, capsys, monkeypatch):
    fake_device_memory(monkeypatch, 64 * GIB)
    args = common(birds, tmp_path / "r", tmp_path / "l") + TINY + ["--epochs", "1", "--mixed-precision", "off"]
    stage1.main(args + ["--input", "host", "--steps-per-epoch", "2"])
    out = capsys.readouterr().out
    assert "| input host (requested)" in out and "(2 host batches)" in out and "stage1 epoch 1/1" in out
    assert (tmp_path / "r" / "stage1_gen.weights.h5").is_file()


# A COCO-sized Stage-II split: 80,000 images stored at 304x304 (22 GB) and 5 captions each (1.6 GB), in sparse files.
SCALE = dict(n=80_000, stored=304, captions=5)

SCALE_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import models
    from stackgan.config import StageConfig
    from stackgan.datasets.cache import Split
    from stackgan.runtime import Runtime
    from stackgan.training.input import TrainingInput
    from stackgan.training.step import StackGANTrainer
    from stackgan.training import memory

    images_path, embeddings_path, networks = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    images = np.load(images_path, mmap_mode="r")
    split = Split(images, np.arange(len(images)) % 80, np.load(embeddings_path, mmap_mode="r"), [])
    runtime = Runtime.choose("off", "off")
    config = StageConfig(stage=2, batch_size=8, **networks)
    with runtime.policy():
        stage1_gen = models.build_generator(1, config.network())
        stage1_gen.trainable = False
        trainer = StackGANTrainer(config, runtime, stage1_gen)
        batches = TrainingInput(split, 256, 8, True, seed=0, steps_per_epoch=3, placement="host")
        trainer.source = batches.source
        trainer.train_steps(batches.iterator(trainer.strategy), 3)
        losses = trainer.pop_mean_losses()
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    print("RESULT " + json.dumps(dict(
        losses=losses, steps=int(trainer.d_opt.iterations.numpy()), epoch_steps=batches.steps,
        peak=int(status["VmHWM"].split()[0]) * 1024, line=memory.estimate(trainer, split, "host").line(None))))
""")


def test_a_coco_sized_split_trains_on_the_host_path_in_bounded_memory(tmp_path):
    n, stored, captions = SCALE["n"], SCALE["stored"], SCALE["captions"]
    images_path, embeddings_path = tmp_path / "train_304.cache.npy", tmp_path / "train_embeddings.cache.npy"
    try:
        # open_memmap sizes the file without writing it: only the pages written below take disk space.
        images = np.lib.format.open_memmap(images_path, "w+", np.uint8, (n, stored, stored, 3))
        embeddings = np.lib.format.open_memmap(embeddings_path, "w+", np.float32, (n, captions, 1024))
        for row in (0, n // 2, n - 1):  # a few real rows among the zeros
            images[row] = row % 251
            embeddings[row] = 0.1
        del images, embeddings
        cache_bytes = os.path.getsize(images_path) + os.path.getsize(embeddings_path)
        on_disk = 512 * (os.stat(images_path).st_blocks + os.stat(embeddings_path).st_blocks)
        if on_disk > 256 * MIB:
            pytest.skip(f"{tmp_path} has no sparse files ({on_disk} bytes written for {cache_bytes})")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
        out = subprocess.run(
            [sys.executable, "-c", SCALE_SCRIPT, str(images_path), str(embeddings_path), json.dumps(TINY_NETWORKS)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=600,
        )
    finally:
        for path in (images_path, embeddings_path):
            if path.exists():
                path.unlink()
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.split("RESULT ", 1)[1])
    assert result["steps"] == 3 and result["epoch_steps"] == 3 and all(np.isfinite(list(result["losses"].values())))
    assert cache_bytes > 23 * 10**9
    # TensorFlow, the networks and a few batches: a small fraction of the 23.8 GB the split spans.
    assert result["peak"] < 3 * GIB, result
    assert "(2 host batches)" in result["line"]
