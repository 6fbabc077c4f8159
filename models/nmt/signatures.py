"""The serving contract of `nmt` (DESIGN.md): English sentences in, German sentences out.

Signatures (all take `text`: string [N], UTF-8, one sentence each, and return
`translation`: string [N]):

- `serving_default`: beam search with `DEFAULT_BEAM_SIZE` (4) hypotheses;
- `beam_search`: also takes `beam_size`: int32 scalar, 1 to `max_beam_size` (a
  signature input cannot have a default, hence a second signature);
- `greedy`: the most probable subword at each step (fastest).

Tokenization (SentencePiece, by tensorflow_text, the model proto stored in the graph)
and detokenization happen inside the SavedModel, so a plain TensorFlow Serving client
sends and receives strings. Loading it needs `import tensorflow_text` (the server does).

Input rules, all checked by graph ops so any server rejects bad input with
INVALID_ARGUMENT: an empty batch, a sentence over `max_input_bytes` bytes, text that
is not valid UTF-8, a `beam_size` outside 1..`max_beam_size`. Documented behaviour:
a sentence is cut after `max_source_tokens - 1` subwords (long inputs are translated
in part, not refused); an empty or all-whitespace sentence translates to "";
a translation has at most `target_limit(source subwords)` subwords (German runs about
1.2 times as many subwords as English; the bound stops a model that loops from running
on), and at most `max_target_tokens`.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text

from models.nmt import decode
from models.nmt.model import LuongSeq2Seq
from models.nmt.vocab import EOS_ID, PAD_ID

DEFAULT_BEAM_SIZE = 4
TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")


def target_limit(source_tokens: tf.Tensor) -> tf.Tensor:
    """Most output subwords (EOS included) for a source of `source_tokens` (EOS included)."""
    return 3 * source_tokens // 2 + 5


class TranslationModule(tf.Module):
    """A trained LuongSeq2Seq with its tokenizer and serving signatures."""

    def __init__(
        self,
        model: LuongSeq2Seq,
        sentencepiece_model: bytes,
        max_source_tokens: int = 64,
        max_target_tokens: int = 96,
        max_input_bytes: int = 4096,
        max_beam_size: int = 16,
        name: str = "nmt",
    ):
        super().__init__(name=name)
        for field, value, least in (
            ("max_source_tokens", max_source_tokens, 2),
            ("max_target_tokens", max_target_tokens, 1),
            ("max_input_bytes", max_input_bytes, 1),
            ("max_beam_size", max_beam_size, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(
                    f"`{field}` must be an integer of at least {least}. Received: {field}={value}"
                )
        self.model = model
        self.tokenizer = tensorflow_text.SentencepieceTokenizer(model=sentencepiece_model)
        self.max_source_tokens = max_source_tokens
        self.max_target_tokens = max_target_tokens
        self.max_input_bytes = max_input_bytes
        self.max_beam_size = max_beam_size

    @tf.function(input_signature=[TEXT_SPEC])
    def serving_default(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        """English [N] -> German [N], beam search with DEFAULT_BEAM_SIZE hypotheses."""
        return self._translate(text, tf.constant(DEFAULT_BEAM_SIZE))

    @tf.function(
        input_signature=[TEXT_SPEC, tf.TensorSpec([], tf.int32, name="beam_size")],
    )
    def beam_search(self, text: tf.Tensor, beam_size: tf.Tensor) -> dict[str, tf.Tensor]:
        """English [N] -> German [N] with `beam_size` hypotheses per sentence."""
        in_range = tf.debugging.assert_equal(
            (beam_size >= 1) & (beam_size <= self.max_beam_size),
            True,
            message=f"beam_size must be from 1 to {self.max_beam_size}",
        )
        with tf.control_dependencies([in_range]):
            return self._translate(text, tf.identity(beam_size))

    @tf.function(input_signature=[TEXT_SPEC])
    def greedy(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        """English [N] -> German [N], the most probable subword at each step."""
        return self._translate(text, None)

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """For `tf.saved_model.save(module, path, signatures=module.signatures())`."""
        return {
            "serving_default": self.serving_default.get_concrete_function(),
            "beam_search": self.beam_search.get_concrete_function(),
            "greedy": self.greedy.get_concrete_function(),
        }

    def _translate(self, text: tf.Tensor, beam_size: tf.Tensor | None) -> dict[str, tf.Tensor]:
        with tf.control_dependencies(self._check_text(text)):
            # On the data path, so no graph optimization can drop it: fails with
            # "Invalid formatting on input string" for bytes that are not UTF-8 text.
            text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="strict")
        source = self.source_ids(text)
        source_tokens = tf.shape(source)[1]
        max_length = tf.minimum(target_limit(source_tokens), self.max_target_tokens)
        if beam_size is None:
            ids = decode.greedy_decode(self.model, source, max_length)
        else:
            ids = decode.beam_search_decode(self.model, source, beam_size, max_length)
        translation = self.tokenizer.detokenize(decode.ids_to_ragged(ids))
        blank = tf.equal(tf.strings.strip(text), "")
        return {"translation": tf.where(blank, "", translation)}

    def source_ids(self, text: tf.Tensor) -> tf.Tensor:
        """Sentences [N] -> subword ids [N, S]: at most max_source_tokens - 1, then EOS."""
        pieces = self.tokenizer.tokenize(text)[:, : self.max_source_tokens - 1]
        eos = tf.fill([pieces.nrows(), 1], tf.constant(EOS_ID, pieces.dtype))
        return tf.cast(tf.concat([pieces, eos], axis=1).to_tensor(PAD_ID), tf.int32)

    def _check_text(self, text: tf.Tensor) -> list[tf.Operation]:
        return [
            tf.debugging.assert_greater(
                tf.size(text), 0, message="text must hold at least one sentence"
            ),
            tf.debugging.assert_less_equal(
                tf.strings.length(text),
                self.max_input_bytes,
                message=f"a sentence is longer than max_input_bytes={self.max_input_bytes}",
            ),
        ]
