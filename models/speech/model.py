"""The recogniser: a convolutional front-end, a bidirectional GRU encoder, CTC over characters.

Two 3x3 convolutions read the normalised log-mel spectrogram; the first strides 3
in time and 2 in frequency, the second halves frequency again, so the encoder runs
at 30 ms a step: 33 steps a second leave CTC room for the quickest voices (under 25
labels a second, repeats included), and the recurrent work, which dominates a CPU
step, is a third of what 10 ms steps cost. Bidirectional GRUs (Deep Speech 2's recipe, scaled to a
CPU) turn that into one distribution over the alphabet and CTC's blank per step.

Batches are padded: the model takes each row's real frame count and masks the rest
(convolution outputs beyond it are zeroed and the GRUs skip it), so a padded row
gives the logits it gives alone. Time is padded to a multiple of the stride first:
with "same" padding a stride-2 convolution aligns differently on odd lengths.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from models.speech.alphabet import NUM_CLASSES
from models.speech.features import MEL_BINS

TIME_STRIDE = 3


def output_frames(frames: tf.Tensor) -> tf.Tensor:
    """Encoder steps (logit rows) for inputs of `frames` feature frames."""
    return (tf.cast(frames, tf.int32) + TIME_STRIDE - 1) // TIME_STRIDE


@keras.saving.register_keras_serializable(package="tfstack")
class PadTime(keras.layers.Layer):
    """Zero-pads axis 1 to a multiple of `multiple`."""

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = multiple

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        extra = -tf.shape(inputs)[1] % self.multiple
        paddings = tf.concat(
            [[[0, 0], [0, extra]], tf.zeros([tf.rank(inputs) - 2, 2], tf.int32)], 0
        )
        return tf.pad(inputs, paddings)

    def get_config(self) -> dict:
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="tfstack")
class FrameMask(keras.layers.Layer):
    """[x (B, T, ...), frames (B)] -> bool [B, T]: which of x's steps hold real frames."""

    def __init__(self, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.stride = stride

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        x, frames = inputs
        steps = (tf.cast(frames, tf.int32) + self.stride - 1) // self.stride
        return tf.sequence_mask(steps, tf.shape(x)[1])

    def get_config(self) -> dict:
        return {**super().get_config(), "stride": self.stride}


@keras.saving.register_keras_serializable(package="tfstack")
class ZeroMasked(keras.layers.Layer):
    """[x (B, T, ...), mask (B, T)] -> x with the masked steps set to zero."""

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        x, mask = inputs
        mask = tf.cast(mask, x.dtype)
        return x * tf.reshape(
            mask, tf.concat([tf.shape(mask), tf.ones([tf.rank(x) - 2], tf.int32)], 0)
        )


def build_recognizer(
    conv_filters: tuple[int, int] = (32, 32),
    rnn_units: int = 128,
    rnn_layers: int = 2,
    dropout: float = 0.1,
    mel_bins: int = MEL_BINS,
) -> keras.Model:
    """Inputs `features` [B, T, mel_bins] (normalised) and `frames` [B] (real frames per row);
    output: logits [B, ceil(T / TIME_STRIDE), NUM_CLASSES], blank last."""
    conv_filters = tuple(conv_filters)
    if len(conv_filters) != 2 or any(not isinstance(f, int) or f < 1 for f in conv_filters):
        raise ValueError(
            f"`conv_filters` must be two positive integers. Received: conv_filters={conv_filters}"
        )
    for name, value in (("rnn_units", rnn_units), ("rnn_layers", rnn_layers)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
    if mel_bins % 4:
        raise ValueError(f"`mel_bins` must be a multiple of 4. Received: mel_bins={mel_bins}")

    features = keras.Input(shape=(None, mel_bins), name="features")
    frames = keras.Input(shape=(), dtype="int32", name="frames")
    x = PadTime(TIME_STRIDE, name="pad_time")(features)
    x = keras.layers.Reshape((-1, mel_bins, 1), name="add_channel")(x)
    x = keras.layers.Conv2D(
        conv_filters[0],
        3,
        strides=(TIME_STRIDE, 2),
        padding="same",
        activation="relu",
        name="conv_0",
    )(x)
    mask = FrameMask(TIME_STRIDE, name="frame_mask")([x, frames])
    x = ZeroMasked(name="mask_conv_0")([x, mask])
    x = keras.layers.Conv2D(
        conv_filters[1], 3, strides=(1, 2), padding="same", activation="relu", name="conv_1"
    )(x)
    x = ZeroMasked(name="mask_conv_1")([x, mask])
    x = keras.layers.Reshape((-1, mel_bins // 4 * conv_filters[1]), name="flatten_bands")(x)
    for index in range(rnn_layers):
        x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
        gru = keras.layers.GRU(rnn_units, return_sequences=True)
        x = keras.layers.Bidirectional(gru, name=f"bigru_{index}")(x, mask=mask)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model([features, frames], logits, name="speech_ctc")
