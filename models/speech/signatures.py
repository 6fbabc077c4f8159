"""The serving contract of `speech` (DESIGN.md): WAV bytes in, lower-case transcripts out.

`serving_default` takes `audio_bytes`: string [N], each a 16 kHz mono PCM16 WAV
file, and returns `transcript`: string [N] (greedy CTC decoding). `beam_search`
has the same input and returns `transcript` and `log_probability` (float [N]) from
a CTC beam search of width `beam_width`. A batch may mix lengths: utterances are
padded and masked, so each is transcribed as it would be alone.

Every check is a graph op, so a SavedModel served without tfstack's code still
rejects bad input with INVALID_ARGUMENT: an empty batch, bytes that are not a PCM16
WAV, a sample rate other than 16 kHz (the error says to resample), more than one
channel, no samples, or more than `max_seconds` of audio.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from models.speech import features, recognize
from models.speech.decode import beam_search_decode, greedy_decode

DEFAULT_BEAM_WIDTH = 8
_AUDIO_BYTES = tf.TensorSpec([None], tf.string, name="audio_bytes")


class SpeechRecognitionModule(tf.Module):
    """A trained CTC recogniser with its serving signatures."""

    def __init__(
        self,
        model: keras.Model,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        max_seconds: float = features.DEFAULT_MAX_SECONDS,
        name: str = "speech",
    ):
        super().__init__(name=name)
        if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
            raise ValueError(
                f"`beam_width` must be a positive integer. Received: beam_width={beam_width}"
            )
        if not 0 < max_seconds <= 600:
            raise ValueError(
                f"`max_seconds` must be in (0, 600]. Received: max_seconds={max_seconds}"
            )
        # Only the model's variables join the SavedModel's object graph: with the Keras
        # model itself in it, saving also traces every layer's calls for Keras' own loader,
        # which no server runs (for `tiny`: twice the export time, 16 MB instead of 7).
        self._keras = _Unsaved(model)
        self.model_variables = list(model.variables)
        self.beam_width = beam_width
        self.max_seconds = float(max_seconds)

    @tf.function(input_signature=[_AUDIO_BYTES])
    def serving_default(self, audio_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """WAV files [N] -> greedy transcripts [N]."""
        logits, steps = self._logits(audio_bytes)
        return {"transcript": greedy_decode(logits, steps)}

    @tf.function(input_signature=[_AUDIO_BYTES])
    def beam_search(self, audio_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """WAV files [N] -> beam-search transcripts [N] and their log probabilities [N]."""
        logits, steps = self._logits(audio_bytes)
        transcript, log_probability = beam_search_decode(logits, steps, self.beam_width)
        return {"transcript": transcript, "log_probability": log_probability}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """For `tf.saved_model.save(module, path, signatures=module.signatures())`."""
        return {
            "serving_default": self.serving_default.get_concrete_function(),
            "beam_search": self.beam_search.get_concrete_function(),
        }

    def _logits(self, audio_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        not_empty = tf.debugging.assert_greater(
            tf.size(audio_bytes), 0, message="audio_bytes must hold at least one WAV file"
        )
        with tf.control_dependencies([not_empty]):
            waveforms = tf.map_fn(
                lambda wav: features.decode_wav(wav, self.max_seconds),
                audio_bytes,
                fn_output_signature=tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0),
            )
        return recognize.logits(self._keras.model, waveforms.to_tensor(), waveforms.row_lengths())


class _Unsaved:
    """Holds a Keras model where tf.Module's attribute tracking does not look."""

    def __init__(self, model: keras.Model):
        self.model = model
