"""The Python API stackgan.StackGAN on tiny untrained networks: README's example, shapes, seeds, what it heard, errors."""

import os
import shutil

import numpy as np
import pytest

import stackgan
from stackgan import layout
from stackgan.cli import UserError
from stackgan.datasets import synthetic

CAPTION = "a small yellow bird with dark wings"


@pytest.fixture(scope="module")
def model(tiny_results):
    return stackgan.StackGAN.from_preset(tiny_results)


def readme_api_example():
    """The Python block under README's "The Python API" heading."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    section = readme.split("## The Python API", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_example(tiny_results, capsys):
    example = readme_api_example()
    assert '"results/demo"' in example
    namespace = {}
    exec(compile(example.replace('"results/demo"', repr(tiny_results)), "README.md", "exec"), namespace)
    images, more = namespace["images"], namespace["more"]
    assert images.shape == (1, 4, 256, 256, 3) and images.dtype == np.uint8  # the tiny results have Stage-II
    assert len({images[0, k].tobytes() for k in range(4)}) == 4  # each sample its own noise
    assert more.shape == (2, 2, 256, 256, 3) and namespace["vectors"].shape == (2, 1024)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "(1, 4, 256, 256, 3) uint8" and "read_as" in printed[1]


def test_stage_shapes_and_prompts(tiny_results, model):
    assert model.stage == 2 and model.image_size == 256 and model.has_encoder
    stage1 = stackgan.StackGAN.from_preset(tiny_results, stage=1)
    assert stage1.stage == 1 and stage1.image_size == 64
    assert stage1.generate(CAPTION).shape == (1, 1, 64, 64, 3)
    small, large = model.generate(["a red bird", "a blue bird"], samples=3, all_stages=True)
    assert small.shape == (2, 3, 64, 64, 3) and large.shape == (2, 3, 256, 256, 3)
    vectors = model.encode(["a red bird", "a blue bird"])
    assert vectors.shape == (2, 1024) and vectors.dtype == np.float32
    # Embeddings give the images of the captions they encode; one vector is one prompt.
    np.testing.assert_array_equal(model.generate(vectors, samples=3), large)
    assert model.generate(vectors[0], samples=2).shape == (1, 2, 256, 256, 3)


def test_seeds_are_reproducible_and_each_changes_its_noise(tiny_results):
    birds = stackgan.StackGAN.from_preset(tiny_results, stage=1)

    def images(seed, condition_seed=None):
        return birds.generate([CAPTION], samples=2, seed=seed, condition_seed=condition_seed)

    base = images(0)
    np.testing.assert_array_equal(images(0), base)  # the same seeds, the same birds, call after call
    np.testing.assert_array_equal(images(0, 0), base)  # condition_seed defaults to seed
    new_z, new_condition = images(1, 0), images(0, 1)
    for other in (new_z, new_condition):
        assert (
            np.abs(other.astype(int) - base).mean() > 0.25
        )  # the untrained tiny generator varies little, but it varies
    assert np.abs(new_z.astype(int) - new_condition).mean() > 0.25
    np.testing.assert_array_equal(images(1, 0), new_z)
    np.testing.assert_array_equal(images(0, 1), new_condition)


def test_heard_reads_the_caption_and_names_what_it_cannot_read(model):
    heard = model.heard("A Small YELLOW bird, with  dark wings 🐦", neighbours=4)
    assert heard["read_as"] == "a small yellow bird, with dark wings"
    assert heard["unknown_words"] == ["🐦"]
    # The tiny encoder is untrained: the decoded attributes are some colour and shade, not necessarily these.
    assert heard["colour"] in [name for name, _ in synthetic.PALETTE]
    assert heard["wings"] in synthetic.WING_SHADES
    scores = [n["score"] for n in heard["nearest"]]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert all(n["caption"] and n["image"] for n in heard["nearest"])
    assert model.heard("un oiseau très jaune")["read_as"] == "un oiseau tres jaune"  # accents are read without
    with pytest.raises(UserError, match="^the caption is empty"):
        model.heard("   ", label="the caption")


def test_without_the_training_data_nothing_is_near(tiny_results, tmp_path):
    birds = stackgan.StackGAN.from_preset(tiny_results)
    birds.configs[-1]["data_dir"] = str(tmp_path / "gone")
    heard = birds.heard(CAPTION)
    assert heard["nearest"] == [] and heard["colour"] is None and heard["read_as"] == CAPTION


def test_errors_are_one_line_user_errors(tiny_results, model, tmp_path):
    with pytest.raises(UserError, match=r"stage1_config.json not found: StackGAN.from_preset needs trained Stage-1"):
        stackgan.StackGAN.from_preset(str(tmp_path / "nothing"))
    assert f"python stage1.py --results-dir {tmp_path / 'nothing'}" in _message(
        stackgan.StackGAN.from_preset, str(tmp_path / "nothing")
    )
    with pytest.raises(UserError, match="stage must be 1 or 2"):
        stackgan.StackGAN.from_preset(tiny_results, stage=3)
    with pytest.raises(UserError, match="^caption 1 is empty"):
        model.generate([""])
    with pytest.raises(UserError, match=r"^caption 2 \('\?\?\?'\) has no letters"):
        model.encode(["a bird", "???"])
    with pytest.raises(UserError, match="has 61 characters but the text encoder reads at most 60"):
        model.generate("a" * 61)
    with pytest.raises(UserError, match="samples must be a whole number of at least 1"):
        model.generate(CAPTION, samples=0)
    with pytest.raises(UserError, match=r"^prompts: 7-dimensional embeddings \(shape \(1, 7\)\)"):
        model.generate(np.zeros((1, 7), np.float32))
    with pytest.raises(UserError, match="not finite"):
        model.generate(np.full((1, 1024), np.nan, np.float32))
    no_encoder = str(tmp_path / "no_encoder")
    shutil.copytree(tiny_results, no_encoder)
    os.remove(layout.text_encoder_weights_path(no_encoder))
    without = stackgan.StackGAN.from_preset(no_encoder)
    assert not without.has_encoder
    with pytest.raises(UserError, match=f"no trained text encoder in {no_encoder}; run `python text_encoder.py train"):
        without.generate(CAPTION)


def _message(function, *args):
    with pytest.raises(UserError) as info:
        function(*args)
    return str(info.value)
