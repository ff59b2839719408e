"""The chapter's networks and losses, under the chapter's names: what stage1.py, stage2.py, generate.py and the
Python API build. The code lives in stackgan/models.py (the installable package); this module is where a reader of
the chapter finds each function.

    import models
    gen = models.build_stage1_generator()        # the chapter's Stage-I generator, 10,270,400 parameters
"""

from stackgan.models import (
    KL_loss,
    ConditioningAugmentation,
    build_adversarial_model,
    build_ca_model,
    build_discriminator,
    build_embedding_compressor_model,
    build_generator,
    build_stage1_discriminator,
    build_stage1_generator,
    build_stage2_discriminator,
    build_stage2_generator,
    custom_generator_loss,
    generate_c,
    joint_block,
    residual_block,
)

__all__ = [
    "ConditioningAugmentation",
    "KL_loss",
    "build_adversarial_model",
    "build_ca_model",
    "build_discriminator",
    "build_embedding_compressor_model",
    "build_generator",
    "build_stage1_discriminator",
    "build_stage1_generator",
    "build_stage2_discriminator",
    "build_stage2_generator",
    "custom_generator_loss",
    "generate_c",
    "joint_block",
    "residual_block",
]
