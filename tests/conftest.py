"""Shared by every test: the repository on sys.path, Keras on TensorFlow, float32 around every test (the dtype policy
is process-wide, so a test that forgot to restore it must not change the next one), and one synthetic bird set and
one synthetic flower set for the whole run."""

import os
import shutil
import sys

import pytest

from helpers import BIRDS, FLOWERS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tensorflow_kernels_under_a_conflicting_cap():
    """Under an ONEDNN_MAX_CPU_ISA cap that forbids oneDNN what TensorFlow hands it for bf16 or fp16 on this CPU
    (stackgan.runtime.onednn_cap_conflict), TensorFlow would abort in the tests that force those precisions: they
    run on TensorFlow's own kernels instead (TF_ENABLE_ONEDNN_OPTS=0, read when TensorFlow is imported)."""
    from stackgan import runtime

    flags, cap = runtime.cpu_info()["flags"], runtime.onednn_max_isa_env()
    if any(runtime.onednn_cap_conflict(mode, flags, cap) for mode in ("bf16", "fp16")):
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
        return f"ONEDNN_MAX_CPU_ISA={cap} forbids oneDNN bf16/fp16 on this CPU: TF_ENABLE_ONEDNN_OPTS=0"
    return None


ONEDNN_NOTE = _tensorflow_kernels_under_a_conflicting_cap()


def pytest_report_header(config):
    return ONEDNN_NOTE


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts in float32 and leaves the policy as it found it."""
    if "keras" not in sys.modules:
        yield
        return
    import keras

    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def birds(tmp_path_factory):
    """The synthetic bird set of the test run (48 training, 16 test birds). Read it, do not change it: copy it with
    birds_copy for that."""
    from stackgan.datasets.synthetic import write_synthetic

    root = str(tmp_path_factory.mktemp("birds"))
    write_synthetic(root, **BIRDS)
    return root


@pytest.fixture(scope="session")
def flowers(tmp_path_factory):
    """The synthetic flower set of the test run (64 training flowers of 32 classes, 16 test flowers of 8 other
    classes). Read it, do not change it."""
    from stackgan.datasets.synthetic_flowers import write_synthetic

    root = str(tmp_path_factory.mktemp("flowers"))
    write_synthetic(root, **FLOWERS)
    return root


@pytest.fixture
def birds_copy(birds, tmp_path):
    """A copy of the shared set, without its cache, for a test that changes files."""
    copy = str(tmp_path / "birds")
    shutil.copytree(birds, copy, ignore=shutil.ignore_patterns("cache"))
    return copy


@pytest.fixture(scope="session")
def tiny_results(birds, tmp_path_factory):
    """A results folder as training exports it, with untrained networks: tiny Stage-I and Stage-II generators (their
    configs say they were trained on the shared birds) and a tiny untrained caption encoder."""
    import keras

    import models
    from stackgan import io, layout
    from stackgan.text.encoder import build_encoder, make_config

    keras.utils.set_random_seed(0)  # the same untrained weights whichever test builds it
    out = str(tmp_path_factory.mktemp("results"))
    networks = dict(gf_dim=8, df_dim=4, z_dim=10, condition_dim=4, embedding_dim=1024, data_dir=birds)
    for stage in (1, 2):
        models.build_generator(stage, networks).save_weights(layout.weights_path(out, stage, "gen"))
        io.write_json(layout.config_path(out, stage), dict(networks, stage=stage))
    encoder_config = dict(make_config(4, (8, 8), 8, 60, "mse", "aligned"), output_norm=1.0)
    build_encoder(encoder_config).save_weights(layout.text_encoder_weights_path(out))
    io.write_json(layout.text_encoder_config_path(out), encoder_config)
    return out


@pytest.fixture(scope="session")
def trained_demo(tmp_path_factory):
    """(data folder, results folder) of the Stage-I demo on the demo's synthetic set (800 training, 160 test birds)
    for 16 of its 56 epochs, with the demo's caption encoder: a generator that has learned the colours. Shared by
    the learning tests and the page's tests; trained once per test run, by whichever needs it first."""
    import stage1
    from stackgan.datasets.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("demo")
    birds, results = str(root / "birds"), str(root / "results")
    write_synthetic(birds, n_train=800, n_test=160, seed=0)
    epochs = ["--epochs", "16", "--sample-every", "16", "--checkpoint-every", "16"]
    stage1.main(["--demo", "--data-dir", birds, "--results-dir", results, "--log-dir", str(root / "logs"), *epochs])
    return birds, results
