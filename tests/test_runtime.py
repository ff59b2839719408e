import os
import subprocess
import sys

import pytest

from stackgan import runtime as hw

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EPYC_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx "
    "mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid "
    "tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave "
    "avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext ssbd "
    "ibrs ibpb stibp vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb "
    "sha_ni xsaveopt xsavec xgetbv1 xsaves clzero xsaveerptr wbnoinvd arat umip pku ospke vaes vpclmulqdq rdpid fsrm"
)
SPR_FLAGS = EPYC_FLAGS + (
    " avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16 avx512_fp16 avx512vbmi amx_bf16 amx_tile "
    "amx_int8"
)


def cpuinfo(model, flags):
    block = f"processor\t: {{i}}\nvendor_id\t: x\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"
    return block.format(i=0) + block.format(i=1)


EPYC = hw.cpu_info(cpuinfo("AMD EPYC", EPYC_FLAGS))
SPR = hw.cpu_info(cpuinfo("Intel(R) Xeon(R) Platinum 8480+", SPR_FLAGS))
H100 = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": (9, 0)}


def gpu(cc):
    return [{"name": f"GPU {cc}", "compute_capability": cc}]


def test_cpu_info_parses_model_and_flags():
    assert EPYC["model"] == "AMD EPYC"
    assert {"avx2", "fma", "sse4_1"} <= EPYC["flags"] and not any(f.startswith("avx512") for f in EPYC["flags"])
    assert SPR["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"amx_bf16", "amx_tile", "avx512_bf16"} <= SPR["flags"]


def test_cpu_info_fallback_without_cpuinfo():
    info = hw.cpu_info("")
    assert isinstance(info["model"], str) and info["model"] and info["flags"] == set()


def test_cpu_info_on_this_machine_without_tensorflow():
    code = "import sys; from stackgan import runtime; i = runtime.cpu_info(); "
    code += "assert i['model'] and isinstance(i['flags'], set); assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    info = hw.cpu_info()
    assert isinstance(info["model"], str) and info["model"].strip()
    assert isinstance(info["flags"], set)


@pytest.mark.parametrize(
    "flags, cap, level",
    [
        (EPYC["flags"], None, "AVX2"),
        (EPYC["flags"], "avx512_core_amx", "AVX2"),
        (EPYC["flags"], "sse41", "SSE41"),
        (SPR["flags"], None, "AVX512_CORE_AMX"),
        (SPR["flags"], "ALL", "AVX512_CORE_AMX"),
        (SPR["flags"], "avx512_core", "AVX512_CORE"),
        (SPR["flags"], "AVX512_CORE_VNNI", "AVX512_CORE"),
        (SPR["flags"], "AVX512_CORE_FP16", "AVX512_CORE_BF16"),
        (SPR["flags"], "AVX10_1_512_AMX", "AVX512_CORE_AMX"),
        (SPR["flags"], "AVX2_VNNI", "AVX2"),
        (SPR["flags"], "nonsense", "AVX512_CORE_AMX"),
        ({"sse4_1"}, None, "SSE41"),
        (set(), None, "DEFAULT"),
        ({"avx512f", "avx512bw", "avx2"}, None, "AVX512_CORE"),
        ({"avx512_bf16", "avx512f", "avx512bw"}, None, "AVX512_CORE_BF16"),
    ],
)
def test_isa_level(flags, cap, level):
    assert hw.isa_level(flags, cap) == level


def test_isa_cap_parsing_and_env(monkeypatch):
    assert hw.parse_isa_cap("avx2") == ("AVX2", None)
    assert hw.parse_isa_cap("all") == (None, None)
    cap, warning = hw.parse_isa_cap("AVX9000")
    assert cap is None and "AVX9000" in warning
    assert hw.onednn_max_isa_env({"DNNL_MAX_CPU_ISA": "AVX2"}) == "AVX2"
    assert hw.onednn_max_isa_env({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "DNNL_MAX_CPU_ISA": "AVX2"}) == "AVX512_CORE"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert hw.onednn_max_isa_env() is None


def test_native_bf16_cpu():
    assert not hw.native_bf16_cpu(EPYC["flags"])
    assert hw.native_bf16_cpu(SPR["flags"])
    assert hw.native_bf16_cpu(SPR["flags"], "AVX512_CORE_BF16")
    assert not hw.native_bf16_cpu(SPR["flags"], "AVX2")
    assert not hw.native_bf16_cpu(SPR["flags"], "avx512_core")


def test_auto_precision_on_cpus():
    mode, reason = hw.choose_precision("auto", [], EPYC["flags"])
    assert mode == "off" and "no native bf16" in reason
    mode, reason = hw.choose_precision("auto", [], SPR["flags"])
    assert mode == "bf16" and "AVX512_CORE_AMX" in reason
    assert hw.choose_precision("auto", [], SPR["flags"], "AVX2")[0] == "off"
    assert hw.choose_precision("auto", [], SPR["flags"], "AVX512_CORE")[0] == "off"
    mode, reason = hw.choose_precision("auto", [], SPR["flags"], "AVX512_CORE_BF16")
    assert mode == "bf16" and reason == "auto: native bf16, the fastest on AVX512_CORE_BF16 CPUs"
    zen5 = {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"}
    assert hw.choose_precision("auto", [], zen5) == ("bf16", "auto: native bf16, the fastest on AVX512_CORE_BF16 CPUs")


@pytest.mark.parametrize("cc, mode", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_precision_on_gpus(cc, mode):
    got, reason = hw.choose_precision("auto", gpu(cc), EPYC["flags"])
    assert got == mode and f"{cc[0]}.{cc[1]}" in reason


def test_auto_precision_uses_weakest_gpu_and_unknown_capability():
    assert hw.choose_precision("auto", gpu((9, 0)) + gpu((7, 5)), set())[0] == "fp16"
    assert hw.choose_precision("auto", [{"name": "x", "compute_capability": None}], set())[0] == "off"


@pytest.mark.parametrize("requested", ["off", "bf16", "fp16", "BF16"])
@pytest.mark.parametrize(
    "gpus, flags", [([], EPYC["flags"]), ([], SPR["flags"]), (gpu((7, 0)), set()), ([H100], set())]
)
def test_explicit_precision_wins(requested, gpus, flags):
    assert hw.choose_precision(requested, gpus, flags) == (requested.lower(), "requested")


def test_unknown_precision_raises():
    with pytest.raises(ValueError):
        hw.choose_precision("fp8", [], set())


def test_slow_precision_warnings():
    w = hw.warn_slow_precision("bf16", [], EPYC["flags"])
    assert "emulated" in w and "no avx512_bf16/amx_bf16" in w and "--mixed-precision auto or off" in w
    assert "\n" not in w
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in hw.warn_slow_precision("bf16", [], SPR["flags"], "AVX2")
    assert hw.warn_slow_precision("bf16", [], SPR["flags"]) is None
    assert "fp16" in hw.warn_slow_precision("fp16", [], SPR["flags"])
    assert hw.warn_slow_precision("off", [], EPYC["flags"]) is None
    assert hw.warn_slow_precision("bf16", [H100], set()) is None
    assert hw.warn_slow_precision("fp16", gpu((7, 5)), set()) is None
    assert "7.5" in hw.warn_slow_precision("bf16", gpu((7, 5)), set())


def test_a_cap_that_forbids_onednn_a_precision_tensorflow_hands_it_is_refused():
    zen5 = set(EPYC_FLAGS.split()) | {"avx512f", "avx512bw", "avx512_bf16"}  # AVX-512 and bf16, no avx512_fp16
    on = {}
    for cap in ("AVX2", "SSE41", "AVX2_VNNI"):
        message = hw.onednn_cap_conflict("bf16", SPR["flags"], cap, on)
        assert f"ONEDNN_MAX_CPU_ISA={cap}" in message and "raise it to AVX512_CORE" in message
        assert "TF_ENABLE_ONEDNN_OPTS=0" in message and "\n" not in message
        assert hw.onednn_cap_conflict("bf16", zen5, cap, on)
    for cap in (None, "ALL", "AVX512_CORE", "AVX512_CORE_BF16", "avx512_core_amx"):
        assert hw.onednn_cap_conflict("bf16", SPR["flags"], cap, on) is None
    assert hw.onednn_cap_conflict("bf16", EPYC["flags"], "AVX2", on) is None  # an AVX2 CPU: TF's own bf16 kernels
    for cap in ("AVX2", "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_BF16"):
        assert "raise it to AVX512_CORE_FP16" in hw.onednn_cap_conflict("fp16", SPR["flags"], cap, on)
        assert hw.onednn_cap_conflict("fp16", zen5, cap, on) is None  # no avx512_fp16: TF keeps fp16 to itself
    for cap in ("AVX512_CORE_FP16", "AVX512_CORE_AMX"):
        assert hw.onednn_cap_conflict("fp16", SPR["flags"], cap, on) is None
    assert hw.onednn_cap_conflict("off", SPR["flags"], "AVX2", on) is None
    assert hw.onednn_cap_conflict("bf16", SPR["flags"], "AVX2", {"TF_ENABLE_ONEDNN_OPTS": "0"}) is None


@pytest.mark.skipif(
    "avx512f" not in hw.cpu_info()["flags"], reason="the cap conflicts with bf16 only on an AVX-512 CPU"
)
def test_bf16_under_a_conflicting_cap_is_one_line_not_an_abort():
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(ONEDNN_MAX_CPU_ISA="AVX2", TF_CPP_MIN_LOG_LEVEL="3")
    args = ["--mixed-precision", "bf16", "--gf-dim", "8", "--df-dim", "4", "--batch-size", "2", "--xla", "off"]
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench.py"), *args, "--steps", "1", "--warmup", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "mixed bf16 cannot run under ONEDNN_MAX_CPU_ISA=AVX2" in result.stderr.strip().splitlines()[-1]


def test_import_tensorflow_is_quiet_unless_the_user_set_the_log_level():
    script = "from stackgan import runtime; tf = runtime.import_tensorflow(); print(tf.__name__)"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "tensorflow"
    assert quiet.stderr == "", quiet.stderr
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # the user's choice is kept
    script = "import os; from stackgan import runtime; runtime.import_tensorflow(); print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    kept = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert kept.returncode == 0 and kept.stdout.strip() == "0"


def test_startup_line_cpu():
    mode, reason = hw.choose_precision("auto", [], EPYC["flags"])
    device = hw.device_description([], EPYC, cores=2)
    assert device == "CPU AMD EPYC (2 cores, AVX2)"
    line = hw.startup_line(device, mode, reason, False, 32, 1, "forward")
    assert line == (
        "Running on CPU AMD EPYC (2 cores, AVX2) | precision float32 (auto: no native bf16 on this CPU) | XLA off | "
        "conv gradients forward | global batch 32 | 1 replica"
    )


def test_startup_line_gpu():
    mode, reason = hw.choose_precision("auto", [H100], set())
    device = hw.device_description([H100], EPYC)
    assert device == "1x NVIDIA H100 80GB HBM3 (compute 9.0)"
    line = hw.startup_line(device, mode, reason, True, 64, 1)
    assert line.startswith("Running on 1x NVIDIA H100 80GB HBM3 (compute 9.0) | precision mixed bf16 (auto: ")
    assert line.endswith("| XLA on | global batch 64 | 1 replica")
    assert "2x NVIDIA H100" in hw.device_description([H100, H100], EPYC)
    assert hw.startup_line(device, "fp16", "requested", True, 128, 2).endswith("global batch 128 | 2 replicas")
    with_input = hw.startup_line(device, mode, reason, True, 64, 1, input_choice=("host", "auto: too big"))
    assert with_input.endswith("| global batch 64 | 1 replica | input host (auto: too big)")


def test_cpu_training_warning():
    w = hw.cpu_training_warning([], 128, 64)
    assert "No GPU" in w and "days" in w and "requirements-gpu.txt" in w and "tensorflow[and-cuda]" in w
    assert "--demo" in w and len(w.splitlines()) <= 3
    assert hw.cpu_training_warning([], 256, 128) is not None
    assert hw.cpu_training_warning([], 32, 16) is None  # --demo widths
    assert hw.cpu_training_warning([], 16, 8) is None
    assert hw.cpu_training_warning([H100], 128, 64) is None


def test_xla_auto_follows_the_measured_cpu_classes():
    gpu = [{"name": "NVIDIA H100", "compute_capability": (9, 0)}]
    assert hw.choose_xla("auto", [], "off", cpu_flags=EPYC["flags"]) == (
        True,
        "auto: faster than oneDNN alone on AVX2 CPUs",
    )
    assert hw.choose_xla("auto", [], "off", cpu_flags=SPR["flags"], onednn_max_isa="AVX512_CORE")[0] is False
    assert hw.choose_xla("auto", [], "off", cpu_flags=SPR["flags"], onednn_max_isa="AVX2")[0] is True
    assert hw.choose_xla("auto", [], "bf16", cpu_flags=SPR["flags"])[0] is False
    assert hw.choose_xla("auto", [], "off", replicas=2, cpu_flags=EPYC["flags"])[0] is False
    assert hw.choose_xla("auto", gpu, "bf16", replicas=8) == (True, "auto: GPU")
    assert hw.choose_xla("off", gpu, "off") == (False, "requested")
    assert hw.choose_xla("on", [], "bf16") == (True, "requested")


@pytest.mark.parametrize(
    "flags, cap, expected",
    [
        (EPYC["flags"], None, ("off", True, "forward")),
        ({"sse4_1"}, None, ("off", True, "forward")),
        (SPR["flags"], None, ("bf16", False, "native")),
        (SPR["flags"], "AVX512_CORE_BF16", ("bf16", False, "native")),
        (SPR["flags"], "AVX512_CORE", ("off", False, "native")),
        (SPR["flags"], "AVX2", ("off", True, "forward")),
    ],
)
def test_auto_follows_the_class_table(flags, cap, expected):
    """Precision, XLA and convolution gradients of auto, per CPU class, as CPU_CHOICES (README's table) says."""
    precision = hw.choose_precision("auto", [], flags, cap)[0]
    xla = hw.choose_xla("auto", [], precision, cpu_flags=flags, onednn_max_isa=cap)[0]
    kernels = hw.choose_kernels([], flags, cap)[0]
    assert (precision, xla, kernels) == expected
    assert hw.choose_kernels([H100], flags, cap) == ("native", "auto: GPU")
