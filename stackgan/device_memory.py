"""How much memory the device a run trains on has free: each visible GPU's (from nvidia-smi), or on a CPU the RAM
the kernel says is available (/proc/meminfo's MemAvailable, capped by a cgroup's limit). Read once, before
TensorFlow reserves GPU memory for itself; the parsers take text, so they are testable without the hardware.
"""

import dataclasses
import os
import subprocess

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


def probe(gpus):
    """The memory of the device a run trains on: the GPUs' when there are any, else the RAM; None if unknown."""
    return gpu_memory() if gpus else ram_memory()
