"""What a run computes on and how: the device, the precision, XLA, the kernels behind the chapter's layers and the
tf.distribute strategy, chosen once into a Runtime. The choices are pure functions of the hardware, testable with
faked inputs.

Precision belongs to a run, not to the process: Keras' dtype policy is process-wide, so Runtime.policy() sets it
for the block that builds and trains the run's networks and puts back whatever was there before.

Nothing here imports TensorFlow at module level; import_tensorflow() imports it quietly.
"""

import contextlib
import dataclasses
import functools
import os
import platform
import subprocess
import sys
from collections import Counter

# oneDNN's CPU ISA levels that matter here, lowest first.
ISA_LADDER = ("DEFAULT", "SSE41", "AVX2", "AVX512_CORE", "AVX512_CORE_BF16", "AVX512_CORE_AMX")

# ONEDNN_MAX_CPU_ISA values mapped onto the ladder: the highest ladder level the cap still allows.
_ISA_CAPS = {
    "DEFAULT": "DEFAULT",
    "SSE41": "SSE41",
    "AVX": "SSE41",
    "AVX2": "AVX2",
    "AVX2_VNNI": "AVX2",
    "AVX2_VNNI_2": "AVX2",
    "AVX512_CORE": "AVX512_CORE",
    "AVX512_CORE_VNNI": "AVX512_CORE",
    "AVX512_CORE_BF16": "AVX512_CORE_BF16",
    "AVX512_CORE_FP16": "AVX512_CORE_BF16",
    "AVX10_1_512": "AVX512_CORE_BF16",
    "AVX10_2_512": "AVX512_CORE_BF16",
    "AVX512_CORE_AMX": "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16": "AVX512_CORE_AMX",
    "AVX10_1_512_AMX": "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16": "AVX512_CORE_AMX",
    "AVX10_2_512_AMX_2": "AVX512_CORE_AMX",
}

PRECISION_LABELS = {"off": "float32", "bf16": "mixed bf16", "fp16": "mixed fp16"}

# ONEDNN_MAX_CPU_ISA values that still let oneDNN run fp16 (AVX512_CORE_FP16 and the levels above it).
_FP16_CAPS = {
    "AVX512_CORE_FP16",
    "AVX10_1_512",
    "AVX10_2_512",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX10_2_512_AMX_2",
}


def cpu_info(cpuinfo_text=None):
    """{"model": str, "flags": set} from /proc/cpuinfo (or the given text); platform.processor() elsewhere."""
    if cpuinfo_text is None and sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo_text = f.read()
        except OSError:
            pass
    model, flags = "", set()
    for line in (cpuinfo_text or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = " ".join(value.split())
        elif key in ("flags", "features") and not flags:  # "Features" on ARM
            flags = set(value.split())
    return {"model": model or platform.processor() or platform.machine() or "unknown CPU", "flags": flags}


def onednn_max_isa_env(environ=None):
    """The ONEDNN_MAX_CPU_ISA (or old DNNL_MAX_CPU_ISA) setting, or None."""
    env = os.environ if environ is None else environ
    return env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA") or None


def parse_isa_cap(onednn_max_isa):
    """(ladder level or None for no cap, warning or None) for an ONEDNN_MAX_CPU_ISA value."""
    if not onednn_max_isa or onednn_max_isa.strip().upper() == "ALL":
        return None, None
    value = onednn_max_isa.strip().upper()
    if value in _ISA_CAPS:
        return _ISA_CAPS[value], None
    return None, f"unknown ONEDNN_MAX_CPU_ISA={onednn_max_isa!r} ignored"


def isa_level(flags, onednn_max_isa=None):
    """The CPU's vector ISA level as oneDNN names it, capped by ONEDNN_MAX_CPU_ISA."""
    flags = set(flags)
    if {"amx_bf16", "amx_tile"} <= flags:
        level = "AVX512_CORE_AMX"
    elif "avx512_bf16" in flags:
        level = "AVX512_CORE_BF16"
    elif {"avx512f", "avx512bw"} <= flags:
        level = "AVX512_CORE"
    elif "avx2" in flags:
        level = "AVX2"
    elif "sse4_1" in flags:
        level = "SSE41"
    else:
        level = "DEFAULT"
    cap, _ = parse_isa_cap(onednn_max_isa)
    if cap is not None and ISA_LADDER.index(cap) < ISA_LADDER.index(level):
        level = cap
    return level


# What auto picks on a CPU, by the ISA class oneDNN runs at: (precision, XLA, convolution gradients), the fastest
# combination measured with bench.py at the chapter's widths (README "Performance", docs/experiments.md). Classes
# below AVX2 take AVX2's row.
CPU_CHOICES = {
    "AVX512_CORE_AMX": ("bf16", False, "native"),  # AMX bf16: 48 img/s against float32's 26 (Sapphire Rapids)
    "AVX512_CORE_BF16": ("bf16", False, "native"),  # avx512_bf16: 59 img/s against float32's 41 (AMD Zen 5)
    "AVX512_CORE": ("off", False, "native"),  # XLA's CPU code and our gradients both slower than oneDNN here
    "AVX2": ("off", True, "forward"),  # oneDNN's backward kernels are slow: forward-convolution gradients + XLA
}


def cpu_choices(flags, onednn_max_isa=None):
    """(ISA class, (precision, XLA, convolution gradients)) that auto picks on this CPU."""
    level = isa_level(flags, onednn_max_isa)
    if ISA_LADDER.index(level) < ISA_LADDER.index("AVX2"):
        return level, CPU_CHOICES["AVX2"]
    return level, CPU_CHOICES[level]


def native_bf16_cpu(flags, onednn_max_isa=None):
    """True where oneDNN runs bf16 matmul/conv natively (avx512_bf16 or AMX, not capped away)."""
    return ISA_LADDER.index(isa_level(flags, onednn_max_isa)) >= ISA_LADDER.index("AVX512_CORE_BF16")


def _min_capability(gpus):
    caps = [tuple(g.get("compute_capability") or ()) for g in gpus]
    return None if any(len(c) < 2 for c in caps) else min(caps)


def choose_precision(requested, gpus, cpu_flags, onednn_max_isa=None):
    """(mode in {"off", "bf16", "fp16"}, short reason) for --mixed-precision auto|off|bf16|fp16."""
    requested = (requested or "auto").lower()
    if requested in PRECISION_LABELS:
        return requested, "requested"
    if requested != "auto":
        raise ValueError(f"unknown precision {requested!r}: expected auto, off, bf16 or fp16")
    if gpus:
        cap = _min_capability(gpus)
        if cap is None:
            return "off", "auto: unknown GPU compute capability"
        cc = f"{cap[0]}.{cap[1]}"
        if cap >= (8, 0):
            return "bf16", f"auto: GPU compute capability {cc} has native bf16"
        return "fp16", f"auto: GPU compute capability {cc} < 8.0 has no fast bf16, fp16 with loss scaling"
    level, (precision, _, _) = cpu_choices(cpu_flags, onednn_max_isa)
    if precision == "bf16":
        return "bf16", f"auto: native bf16, the fastest on {level} CPUs"
    return "off", "auto: no native bf16 on this CPU"


def onednn_cap_conflict(mode, cpu_flags, onednn_max_isa=None, environ=None):
    """The one-line refusal for precision `mode` where ONEDNN_MAX_CPU_ISA forbids oneDNN the instructions that
    TensorFlow, judging by the CPU's own features, hands it for that precision: bf16 on an AVX-512 CPU capped below
    AVX512_CORE, fp16 on an avx512_fp16 CPU capped below AVX512_CORE_FP16. TensorFlow then aborts the process
    (dnnl::error "could not create a primitive descriptor"). None where they agree, or with TF_ENABLE_ONEDNN_OPTS=0
    (TensorFlow's own kernels)."""
    env = os.environ if environ is None else environ
    cap, _ = parse_isa_cap(onednn_max_isa)
    if cap is None or env.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() in ("0", "false"):
        return None
    flags = set(cpu_flags)
    if mode == "bf16" and "avx512f" in flags and ISA_LADDER.index(cap) < ISA_LADDER.index("AVX512_CORE"):
        needs = "AVX512_CORE"
    elif mode == "fp16" and flags & {"avx512_fp16", "amx_fp16"} and onednn_max_isa.strip().upper() not in _FP16_CAPS:
        needs = "AVX512_CORE_FP16"
    else:
        return None
    return (
        f"{PRECISION_LABELS[mode]} cannot run under ONEDNN_MAX_CPU_ISA={onednn_max_isa} on this CPU: TensorFlow "
        f"hands it to oneDNN, the cap denies oneDNN the instructions it needs, and the process would abort; unset "
        f"the cap, raise it to {needs}, start with TF_ENABLE_ONEDNN_OPTS=0, or use --mixed-precision off"
    )


def warn_slow_precision(mode, gpus, cpu_flags, onednn_max_isa=None):
    """A one-line warning when the chosen mode is emulated (slow) on this hardware, else None."""
    if gpus:
        cap = _min_capability(gpus)
        if mode == "bf16" and cap is not None and cap < (8, 0):
            return (
                f"bf16 is emulated on GPUs of compute capability {cap[0]}.{cap[1]} (needs 8.0+): "
                "expect it to be slow; use --mixed-precision auto or fp16"
            )
        return None
    if mode == "bf16" and not native_bf16_cpu(cpu_flags, onednn_max_isa):
        why = "no avx512_bf16/amx_bf16"
        if native_bf16_cpu(cpu_flags):
            why = f"ONEDNN_MAX_CPU_ISA={onednn_max_isa} disables avx512_bf16/amx_bf16"
        return (
            f"bf16 is emulated on this CPU ({why}): expect it to be several times slower than float32; "
            "use --mixed-precision auto or off"
        )
    if mode == "fp16":
        return (
            "fp16 is emulated on a CPU: expect it to be several times slower than float32; "
            "use --mixed-precision auto or off"
        )
    return None


def visible_gpus():
    """[{"name", "compute_capability"}] for the GPUs TensorFlow sees; imports TensorFlow."""
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except Exception:  # details are optional
            details = {}
        cc = details.get("compute_capability")
        gpus.append({"name": details.get("device_name", device.name), "compute_capability": tuple(cc) if cc else None})
    return gpus


def import_tensorflow(environ=None):
    """Import TensorFlow with its C++ start-up log silenced, unless the user set TF_CPP_MIN_LOG_LEVEL.

    On a machine without a GPU, TensorFlow prints CUDA probing lines and a "failed call to cuInit" error
    that read like a crash. Level 3 hides the error; the absl lines written before logging is set up
    ("Could not find cuda drivers") ignore every level, so stderr points at /dev/null while the libraries
    load and probe for GPUs. Python exceptions still surface. Returns the tensorflow module.
    """
    env = os.environ if environ is None else environ
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in env:
        import tensorflow

        return tensorflow
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow

            tensorflow.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow


def choose_xla(setting, gpus, precision, replicas=1, cpu_flags=(), onednn_max_isa=None):
    """(whether to compile the training step with XLA, why) for --xla on | off | auto. auto: on with a GPU; on a CPU,
    what CPU_CHOICES measured for its class (on only on AVX2), and off for bf16 and for several CPU replicas
    (collectives across workers)."""
    if setting != "auto":
        return setting == "on", "requested"
    if gpus:
        return True, "auto: GPU"
    if replicas > 1:
        return False, "auto: several CPU replicas"
    level, (_, xla, _) = cpu_choices(cpu_flags, onednn_max_isa)
    if precision == "bf16":
        return False, "auto: bf16 on a CPU runs on oneDNN's kernels"
    return xla, f"auto: {'faster' if xla else 'slower'} than oneDNN alone on {level} CPUs"


def device_description(gpus, cpu, cores=None, onednn_max_isa=None):
    """ "CPU <model> (<n> cores, <ISA>)" or "<n>x <GPU name> (compute X.Y)"."""
    if not gpus:
        cores = cores or os.cpu_count() or 1
        return (
            f"CPU {cpu['model']} ({cores} core{'s' if cores != 1 else ''}, {isa_level(cpu['flags'], onednn_max_isa)})"
        )
    parts = []
    for (name, cc), n in Counter((g["name"], g.get("compute_capability")) for g in gpus).items():
        parts.append(f"{n}x {name}" + (f" (compute {cc[0]}.{cc[1]})" if cc else ""))
    return " + ".join(parts)


def startup_line(device, precision, precision_reason, xla, global_batch, replicas, kernels=None, input_choice=None):
    """One line summarising where and how training runs and why. xla and kernels are a value or (value, reason);
    input_choice: (device or host, reason) of --input."""
    label = PRECISION_LABELS.get(precision, precision)
    xla, xla_reason = xla if isinstance(xla, tuple) else (xla, None)
    kernels, kernels_reason = kernels if isinstance(kernels, tuple) else (kernels, None)
    return (
        f"Running on {device} | precision {label} ({precision_reason}) | XLA {'on' if xla else 'off'}"
        + (f" ({xla_reason})" if xla_reason else "")
        + " | "
        + (f"conv gradients {kernels}" + (f" ({kernels_reason})" if kernels_reason else "") + " | " if kernels else "")
        + f"global batch {global_batch} | {replicas} replica{'s' if replicas != 1 else ''}"
        + (f" | input {input_choice[0]} ({input_choice[1]})" if input_choice else "")
    )


def cpu_training_warning(gpus, gf_dim, df_dim, chapter_gf=128, chapter_df=64):
    """A warning when training at the chapter's widths without a GPU, else None."""
    if gpus or gf_dim < chapter_gf or df_dim < chapter_df:
        return None
    return (
        f"No GPU is visible to TensorFlow: training at the chapter's widths (gf_dim={gf_dim}, df_dim={df_dim}) "
        "will take days on a CPU.\n"
        'To use an NVIDIA GPU (Linux + NVIDIA driver): pip install -r requirements-gpu.txt (i.e. pip install "tensorflow[and-cuda]").\n'
        "Or try --demo: small networks on synthetic birds that learn in minutes on a CPU."
    )


def choose_kernels(gpus, cpu_flags=(), onednn_max_isa=None):
    """(how the chapter's convolutions compute their gradients, why): "forward" (input gradients as forward
    convolutions, small kernel gradients as matrix products) where the CPU's own backward kernels are slow (AVX2:
    1.6x faster), else "native" (the framework's own: cuDNN, oneDNN on AVX-512)."""
    if gpus:
        return "native", "auto: GPU"
    level, (_, _, kernels) = cpu_choices(cpu_flags, onednn_max_isa)
    return kernels, f"auto: {'faster' if kernels == 'forward' else 'oneDNN is faster'} on {level} CPUs"


POLICIES = {"off": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@contextlib.contextmanager
def dtype_policy(mode):
    """Keras' global dtype policy set to the precision `mode` (off, bf16, fp16) inside the block, and put back as it
    was after it. Layers keep the policy they were built with, so networks built inside compute in that
    precision wherever they are used later."""
    import keras

    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[mode])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(saved)


def select_strategy(name):
    """The tf.distribute strategy for --distribute none | mirrored | multiworker."""
    from stackgan.cli import UserError

    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UserError(
                "--distribute multiworker needs the TF_CONFIG environment variable "
                "(cluster and task of this worker); see README 'Several machines'"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """True except on the non-chief workers of a multi-worker run (TF_CONFIG task other than chief/worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and resolver.task_id == 0 and not has_chief)


# ---------------------------------------------------------------------------
# Device memory: how much the device a run trains on has free: each visible GPU's (from nvidia-smi), or on a CPU
# the RAM the kernel says is available (/proc/meminfo's MemAvailable, capped by a cgroup's limit). Read once, before
# TensorFlow reserves GPU memory for itself; the parsers take text, so they are testable without the hardware.
# ---------------------------------------------------------------------------
GIB, MIB = 1 << 30, 1 << 20


def format_bytes(n):
    """'2.62 GiB', or '12.3 MiB' below a tenth of a GiB."""
    return f"{n / GIB:.2f} GiB" if n >= GIB / 10 else f"{n / MIB:.1f} MiB"


@dataclasses.dataclass(frozen=True)
class DeviceMemory:
    """Free and total bytes of the device a replica trains on (the least free of several GPUs)."""

    free: int
    total: int
    kind: str  # "GPU" or "RAM"

    def describe(self):
        return f"{format_bytes(self.free)} free {self.where} (of {format_bytes(self.total)})"

    @property
    def where(self):
        return "on the GPU" if self.kind == "GPU" else "RAM"


def parse_nvidia_smi(text, visible=None):
    """DeviceMemory of the least free of the GPUs listed by `nvidia-smi --query-gpu=index,uuid,memory.total,
    memory.free --format=csv,noheader,nounits` (MiB), keeping only those CUDA_VISIBLE_DEVICES names (indices or
    UUIDs); None when nothing usable is listed or MIG slices are in use (nvidia-smi gives the whole GPU's memory)."""
    wanted = None
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        if any(v.upper().startswith("MIG") for v in wanted):
            return None
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        index, uuid, total, free = parts
        if wanted is not None and index not in wanted and uuid not in wanted:
            continue
        try:
            gpus.append(DeviceMemory(int(float(free)) << 20, int(float(total)) << 20, "GPU"))
        except ValueError:
            continue
    return min(gpus, key=lambda g: g.free) if gpus else None


def gpu_memory(environ=None, run=subprocess.run):
    """The visible GPUs' memory from nvidia-smi, or None where it cannot be read."""
    env = os.environ if environ is None else environ
    try:
        out = run(
            ["nvidia-smi", "--query-gpu=index,uuid,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return parse_nvidia_smi(out.stdout, env.get("CUDA_VISIBLE_DEVICES"))


def parse_meminfo(text):
    """(MemAvailable, MemTotal) in bytes from /proc/meminfo's text, or None."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if key in ("MemAvailable", "MemTotal") and fields and fields[0].isdigit():
            values[key] = int(fields[0]) * 1024
    if len(values) < 2:
        return None
    return values["MemAvailable"], values["MemTotal"]


def cgroup_available(limit_text, current_text, stat_text):
    """(bytes the cgroup may still use, its limit) from cgroup v2's memory.max, memory.current and memory.stat (the
    page cache it holds counts as free), or None without a limit."""
    limit = limit_text.strip()
    if not limit.isdigit():
        return None
    file_cache = 0
    for line in stat_text.splitlines():
        key, _, value = line.partition(" ")
        if key == "file" and value.strip().isdigit():
            file_cache = int(value)
    used = int(current_text.strip()) - file_cache
    return max(int(limit) - used, 0), int(limit)


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def ram_memory(meminfo_path="/proc/meminfo", cgroup_dir="/sys/fs/cgroup"):
    """The RAM available to this process, or None off Linux."""
    meminfo = _read(meminfo_path)
    parsed = parse_meminfo(meminfo) if meminfo else None
    if parsed is None:
        return None
    free, total = parsed
    texts = [_read(os.path.join(cgroup_dir, name)) for name in ("memory.max", "memory.current", "memory.stat")]
    if all(t is not None for t in texts):
        limited = cgroup_available(*texts)
        if limited is not None:
            free, total = min(free, limited[0]), min(total, limited[1])
    return DeviceMemory(free, total, "RAM")


def probe_memory(gpus):
    """The memory of the device a run trains on: the GPUs' when there are any, else the RAM; None if unknown."""
    return gpu_memory() if gpus else ram_memory()


@dataclasses.dataclass
class Runtime:
    """Where and how one run computes, chosen once (Runtime.choose) and read by everything that builds or runs
    networks."""

    device: str
    gpus: list
    cpu_flags: set
    isa_cap: str | None
    precision: str  # off | bf16 | fp16
    precision_reason: str
    xla: bool
    xla_reason: str
    kernels: str  # forward | native: how convolution gradients are computed
    kernels_reason: str
    strategy: object = None
    memory: object = None  # a DeviceMemory, or None where unknown

    @classmethod
    def choose(cls, mixed_precision="auto", xla="auto", distribute="none"):
        """The runtime for the command-line choices, on the hardware TensorFlow sees (imported quietly). The device's
        free memory is read here, before TensorFlow reserves any of it."""
        import_tensorflow()
        strategy = select_strategy(distribute)  # MultiWorker must exist before other TF work
        gpus, cpu, isa_cap = visible_gpus(), cpu_info(), onednn_max_isa_env()
        precision, reason = choose_precision(mixed_precision, gpus, cpu["flags"], isa_cap)
        conflict = None if gpus else onednn_cap_conflict(precision, cpu["flags"], isa_cap)
        if conflict:
            from stackgan.cli import UserError

            raise UserError(conflict)
        kernels, kernels_reason = choose_kernels(gpus, cpu["flags"], isa_cap)
        xla_on, xla_reason = choose_xla(xla, gpus, precision, strategy.num_replicas_in_sync, cpu["flags"], isa_cap)
        return cls(
            device=device_description(gpus, cpu, onednn_max_isa=isa_cap),
            gpus=gpus,
            cpu_flags=cpu["flags"],
            isa_cap=isa_cap,
            precision=precision,
            precision_reason=reason,
            xla=xla_on,
            xla_reason=xla_reason,
            kernels=kernels,
            kernels_reason=kernels_reason,
            strategy=strategy,
            memory=probe_memory(gpus),
        )

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync if self.strategy is not None else 1

    @functools.cached_property
    def chief(self):
        return self.strategy is None or is_chief(self.strategy)

    def policy(self):
        """The block in which the run's networks are built and trained in its precision."""
        return dtype_policy(self.precision)

    def startup_line(self, global_batch, input_choice=None):
        return startup_line(
            self.device,
            self.precision,
            self.precision_reason,
            (self.xla, self.xla_reason),
            global_batch,
            self.replicas,
            (self.kernels, self.kernels_reason),
            input_choice,
        )

    def warnings(self, gf_dim, df_dim):
        """One-line warnings for a run at these widths: emulated precision, chapter widths without a GPU."""
        notes = (
            warn_slow_precision(self.precision, self.gpus, self.cpu_flags, self.isa_cap),
            cpu_training_warning(self.gpus, gf_dim, df_dim),
        )
        return [note for note in notes if note]
