"""The two networks of PixColor-style colourization (Guadarrama et al., 2017).

Stage 1, `build_chroma_network`: grayscale L at a working resolution -> logits over
quantized ab bins at a quarter of it. Stage 2, `build_refinement_network`: L at twice
stage 1's resolution plus the low-resolution ab upsampled to it -> refined ab. Both take
and return Lab in its natural units (L in [0, 100], ab in about [-110, 110]) and scale
inside, so callers never juggle normalizations.

Stage 1 here predicts each low-resolution pixel's colour distribution independently
given a wide-context encoder, instead of PixColor's autoregressive PixelCNN: sampling a
PixelCNN needs one network pass per pixel and channel (2,048 passes for 32x32), beyond a
CPU serving budget. Spatially coherent samples come from correlated sampling noise
(`chroma.correlated_gumbel`) instead.
"""

import tf_keras as keras

from models.colorize import chroma


def build_chroma_network(
    filters: tuple[int, int, int] = (32, 64, 128),
    dropout: float = 0.0,
) -> keras.Model:
    """L [N, H, W, 1] -> logits [N, H/4, W/4, NUM_BINS]; H and W multiples of 8.

    Cheap on a CPU: a 4x4 stride-2 patch stem instead of full-resolution convolutions, a
    dilated context block at 1/8 plus a global summary of the whole photo (scene-level
    cues such as dusk or daylight, as Iizuka et al. 2016), then back up to 1/4 with a
    skip connection for local detail. `dropout` (whole feature maps, before the last
    layer) keeps a network trained on a few dozen photos from being sure of itself."""
    _check_filters(filters, 3)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
    small, medium, large = filters
    lightness = keras.Input(shape=(None, None, 1), name="lightness")
    x = keras.layers.Rescaling(1.0 / 50.0, offset=-1.0, name="normalize_l")(lightness)
    x = _conv(x, small, kernel_size=4, strides=2, name="stem")  # 1/2
    x = _conv(x, medium, strides=2, name="down1")  # 1/4
    quarter = _conv(x, medium, name="quarter")
    x = _conv(quarter, large, strides=2, name="down2")  # 1/8
    x = _conv(x, large, dilation_rate=2, name="context1")
    x = _conv(x, large, dilation_rate=4, name="context2")
    scene = keras.layers.GlobalAveragePooling2D(keepdims=True, name="scene_pool")(x)
    scene = keras.layers.Dense(large, activation="relu", name="scene")(scene)
    x = keras.layers.Add(name="with_scene")([x, scene])
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="up")(x)  # 1/4
    x = keras.layers.Concatenate(name="skip")([x, quarter])
    x = _conv(x, medium, kernel_size=1, name="merge")
    x = _conv(x, medium, name="decode")
    x = keras.layers.SpatialDropout2D(dropout, name="dropout")(x)
    logits = keras.layers.Conv2D(chroma.NUM_BINS, 1, name="bin_logits")(x)
    return keras.Model(lightness, logits, name="chroma_network")


def build_refinement_network(filters: int = 32) -> keras.Model:
    """(L [N, H, W, 1], coarse ab [N, H, W, 2]) -> ab [N, H, W, 2]; H and W even.

    Learns a residual over the coarse colour, with a zero-initialized last layer, so an
    untrained refinement passes stage 1's colour through: it only has to learn where
    colour edges follow luminance edges. Most width sits at half resolution, where it
    costs a quarter."""
    _check_filters((filters,), 1)
    lightness = keras.Input(shape=(None, None, 1), name="lightness")
    coarse_ab = keras.Input(shape=(None, None, 2), name="coarse_ab")
    l_scaled = keras.layers.Rescaling(1.0 / 50.0, offset=-1.0, name="normalize_l")(lightness)
    ab_scaled = keras.layers.Rescaling(1.0 / chroma.AB_LIMIT, name="normalize_ab")(coarse_ab)
    x = keras.layers.Concatenate(name="inputs")([l_scaled, ab_scaled])
    full = _conv(x, max(1, filters // 2), name="full1")
    x = _conv(full, filters, strides=2, name="half1")
    x = _conv(x, filters, dilation_rate=2, name="half2")
    x = _conv(x, filters, dilation_rate=4, name="half3")
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="up")(x)
    x = keras.layers.Concatenate(name="skip")([x, full])
    x = _conv(x, max(1, filters // 2), name="full2")
    residual = keras.layers.Conv2D(2, 3, padding="same", kernel_initializer="zeros", name="delta")(
        x
    )
    refined = keras.layers.Add(name="refined")([ab_scaled, residual])
    ab = keras.layers.Rescaling(chroma.AB_LIMIT, name="ab")(refined)
    return keras.Model([lightness, coarse_ab], ab, name="refinement_network")


def _conv(
    x, filters: int, kernel_size: int = 3, strides: int = 1, dilation_rate: int = 1, name: str = ""
):
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        dilation_rate=dilation_rate,
        padding="same",
        use_bias=False,
        name=f"{name}_conv",
    )(x)
    # momentum 0.9: short CPU runs must still end with moving statistics that match.
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _check_filters(filters: tuple[int, ...], count: int) -> None:
    if len(filters) != count or any(
        isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in filters
    ):
        raise ValueError(
            f"`filters` must be {count} positive integer(s). Received: filters={filters}"
        )
