"""The condition is learned: after a short Stage-I run on synthetic birds, generated test images
show the body colour their text embedding asks for far more often than chance."""
import numpy as np

import data
import sampling
import stage1


def test_stage1_learns_the_body_colour_from_the_embedding(tmp_path):
    birds = str(tmp_path / "birds")
    data.write_synthetic(birds, n_train=800, n_test=160, seed=0)  # the --demo set
    results = tmp_path / "results"
    # The --demo networks and settings, for fewer epochs (the demo runs 120).
    stage1.main(["--demo", "--data-dir", birds, "--results-dir", str(results), "--log-dir", str(tmp_path / "logs"),
                 "--epochs", "50", "--sample-every", "50", "--checkpoint-every", "50"])
    (gen,), config = sampling.load_generators(str(results), 1)
    test = data.load_split(birds, "test", 64)
    embeddings = test.embeddings[:, 0]
    z = np.random.default_rng(7).standard_normal((len(embeddings), config["z_dim"])).astype("float32")
    (images,) = sampling.sample_images([gen], embeddings, z)
    accuracy = data.attribute_accuracy(images, embeddings)
    chance = 1 / len(data.PALETTE)
    assert accuracy >= 0.5, f"attribute accuracy {accuracy:.3f} (chance {chance:.3f})"
    # Not one colour for everything: the generated colours follow the embeddings.
    assert len(set(data.image_colours(images).tolist()) - {-1}) >= 6
