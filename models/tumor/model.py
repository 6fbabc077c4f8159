"""The patch classifier: a small MobileNet-style CNN (depthwise-separable convolutions).

Liu et al. (2017) used Inception v3 on 299 px patches and found small variants nearly as
good; on two CPU cores a MobileNet-style network of a few hundred thousand weights keeps
training to minutes and a whole-slide scan to seconds. Input: float32 RGB in [0, 1];
output: the tumor probability of the patch's centre.
"""

from __future__ import annotations

import tf_keras as keras

BN_MOMENTUM = 0.9  # short training runs: moving statistics must settle in ~100 steps


def build_patch_classifier(
    patch_size: int = 64,
    widths: tuple[int, ...] = (16, 32, 64, 128),
    blocks_per_stage: int = 1,
    dropout: float = 0.2,
) -> keras.Model:
    """A stride-2 stem of `widths[0]` channels, then per further width a stride-2
    separable block and `blocks_per_stage - 1` stride-1 ones, global pooling, sigmoid."""
    widths = tuple(widths)
    if not isinstance(patch_size, int) or patch_size < 2 ** len(widths):
        raise ValueError(
            f"`patch_size` must be an integer of at least {2 ** len(widths)} for "
            f"{len(widths)} widths. Received: patch_size={patch_size}"
        )
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"`widths` must be positive integers. Received: widths={widths}")
    if not isinstance(blocks_per_stage, int) or blocks_per_stage < 1:
        raise ValueError(
            f"`blocks_per_stage` must be a positive integer. Received: {blocks_per_stage}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")

    patches = keras.Input((patch_size, patch_size, 3), name="patches")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(patches)
    x = keras.layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = _batch_norm_relu(x, "stem")
    for stage, width in enumerate(widths[1:], start=1):
        for block in range(blocks_per_stage):
            x = _separable_block(x, width, 2 if block == 0 else 1, f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    probability = keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    return keras.Model(patches, probability, name="tumor_patch_classifier")


def _separable_block(x, width: int, strides: int, name: str):
    x = keras.layers.DepthwiseConv2D(
        3, strides=strides, padding="same", use_bias=False, name=f"{name}_depthwise"
    )(x)
    x = _batch_norm_relu(x, f"{name}_depthwise")
    x = keras.layers.Conv2D(width, 1, use_bias=False, name=f"{name}_pointwise")(x)
    return _batch_norm_relu(x, f"{name}_pointwise")


def _batch_norm_relu(x, name: str):
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)
