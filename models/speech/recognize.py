"""Waveforms -> transcripts with a trained model: the one path evaluation and serving share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.speech.decode import beam_search_decode, greedy_decode
from models.speech.features import waveform_features
from models.speech.model import output_frames


def logits(model: keras.Model, waveforms: tf.Tensor, lengths: tf.Tensor):
    """Padded float32 waveforms [B, S] and lengths [B] -> (logits [B, T, C], steps [B])."""
    features, frames = waveform_features(waveforms, lengths)
    return model([features, frames], training=False), output_frames(frames)


def transcribe(
    model: keras.Model, waveforms: tf.Tensor, lengths: tf.Tensor, beam_width: int | None = None
) -> tf.Tensor:
    """Transcripts [B] (tf.string): greedy, or beam search when `beam_width` is given."""
    scores, steps = logits(model, waveforms, lengths)
    if beam_width is None:
        return greedy_decode(scores, steps)
    return beam_search_decode(scores, steps, beam_width)[0]


class Transcriber:
    """Transcribes lists of NumPy waveforms in length-sorted batches (little padding),
    through one traced graph per decoder."""

    def __init__(self, model: keras.Model, batch_size: int = 32):
        self.model = model
        self.batch_size = batch_size
        spec = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]
        self._greedy = tf.function(lambda w, n: transcribe(model, w, n), input_signature=spec)
        self._beams: dict[int, tf.types.experimental.GenericFunction] = {}
        self._spec = spec

    def __call__(self, waveforms: Sequence[np.ndarray], beam_width: int | None = None) -> list[str]:
        decode = self._greedy if beam_width is None else self._beam(beam_width)
        order = np.argsort([len(w) for w in waveforms], kind="stable")
        transcripts: list[str] = [""] * len(waveforms)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            lengths = np.array([len(waveforms[i]) for i in rows], np.int32)
            padded = np.zeros((len(rows), lengths.max()), np.float32)
            for row, index in enumerate(rows):
                padded[row, : lengths[row]] = waveforms[index]
            for index, text in zip(rows, decode(padded, lengths).numpy(), strict=True):
                transcripts[index] = text.decode()
        return transcripts

    def _beam(self, beam_width: int):
        if beam_width not in self._beams:
            self._beams[beam_width] = tf.function(
                lambda w, n: transcribe(self.model, w, n, beam_width), input_signature=self._spec
            )
        return self._beams[beam_width]
