"""Audio features, all TensorFlow ops: the same graph trains the model and serves it.

WAV bytes -> float samples (`decode_wav`, which refuses what the model cannot hear
right: another sample rate, several channels, too long, empty) -> log-mel
spectrogram (25 ms windows every 10 ms, 40 mel bands from 20 Hz to 7.6 kHz) ->
per-utterance mean and variance normalisation, which removes a channel's colouring
and the loudness and keeps the features of a noisy utterance in the range the model
knows. Batches are padded: `frames` says how many frames of each row are real, and
padded frames are zero, exactly as if the utterance had been alone.
"""

from __future__ import annotations

import tensorflow as tf

SAMPLE_RATE = 16000
FRAME_LENGTH = 400  # 25 ms
FRAME_STEP = 160  # 10 ms
FFT_LENGTH = 512
MEL_BINS = 40
LOWER_HZ, UPPER_HZ = 20.0, 7600.0
DEFAULT_MAX_SECONDS = 20.0
_WAV_HEADER_BYTES = 44
_LOG_FLOOR = 1e-6


def decode_wav(audio_bytes: tf.Tensor, max_seconds: float = DEFAULT_MAX_SECONDS) -> tf.Tensor:
    """One WAV file (scalar string) -> float32 samples [S] in [-1, 1).

    Fails with InvalidArgumentError for bytes that are not a PCM16 WAV, a sample rate
    other than 16 kHz, more than one channel, no samples, or more than `max_seconds`
    (checked on the byte length first, so an oversized request is never decoded)."""
    max_samples = int(max_seconds * SAMPLE_RATE)
    not_too_long = tf.debugging.assert_less_equal(
        tf.strings.length(audio_bytes),
        _WAV_HEADER_BYTES + 2 * max_samples + 1024,  # room for optional WAV chunks
        message=f"audio_bytes holds more than {max_seconds:g} s of 16 kHz mono PCM16 audio",
    )
    with tf.control_dependencies([not_too_long]):
        audio, sample_rate = tf.audio.decode_wav(audio_bytes)
    checks = [
        tf.debugging.assert_equal(
            sample_rate,
            SAMPLE_RATE,
            message=f"audio_bytes must be sampled at {SAMPLE_RATE} Hz; resample it first",
        ),
        tf.debugging.assert_equal(
            tf.shape(audio)[1], 1, message="audio_bytes must be mono (one channel)"
        ),
        tf.debugging.assert_positive(tf.shape(audio)[0], message="audio_bytes holds no samples"),
        tf.debugging.assert_less_equal(
            tf.shape(audio)[0],
            max_samples,
            message=f"audio_bytes holds more than {max_seconds:g} s of audio",
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(audio[:, 0])


def num_frames(num_samples: tf.Tensor) -> tf.Tensor:
    """Frames of `log_mel` for utterances of `num_samples` samples (windows padded at the end)."""
    num_samples = tf.cast(num_samples, tf.int32)
    return (num_samples + FRAME_STEP - 1) // FRAME_STEP


def log_mel(waveforms: tf.Tensor) -> tf.Tensor:
    """float32 [B, S] -> log mel energies [B, ceil(S / FRAME_STEP), MEL_BINS]."""
    spectrogram = tf.abs(
        tf.signal.stft(waveforms, FRAME_LENGTH, FRAME_STEP, FFT_LENGTH, pad_end=True)
    )
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        MEL_BINS, FFT_LENGTH // 2 + 1, SAMPLE_RATE, LOWER_HZ, UPPER_HZ
    )
    return tf.math.log(tf.tensordot(tf.square(spectrogram), mel_matrix, 1) + _LOG_FLOOR)


def normalize(features: tf.Tensor, frames: tf.Tensor) -> tf.Tensor:
    """Per utterance and band: zero mean, unit variance over its real frames; padding -> 0."""
    mask = tf.sequence_mask(frames, tf.shape(features)[1], dtype=features.dtype)[..., None]
    count = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
    mean = tf.reduce_sum(features * mask, axis=1, keepdims=True) / count
    variance = tf.reduce_sum(tf.square(features - mean) * mask, axis=1, keepdims=True) / count
    return (features - mean) * tf.math.rsqrt(variance + 1e-5) * mask


def waveform_features(waveforms: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Padded float32 waveforms [B, S] and their lengths [B] -> (features, frames)."""
    frames = num_frames(lengths)
    return normalize(log_mel(waveforms), frames), frames
