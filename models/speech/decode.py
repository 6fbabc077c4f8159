"""CTC decoding to strings, in graph: greedy (best path) and beam search.

Both take batch-first logits and each row's real length, and return lower-case
transcripts as tf.string: repeated labels merged, blanks dropped, ids looked up in
the alphabet and joined, spaces collapsed and trimmed. Even without a language model
the beam is worth its cost: it finds the most probable labelling, summed over all its
alignments, where greedy takes the single most probable path, and so keeps doubled
letters that a path merges when no blank wins between them ("bedroom", not "bedrom").
"""

from __future__ import annotations

import tensorflow as tf

from models.speech.alphabet import ALPHABET


def greedy_decode(logits: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """logits [B, T, C] (blank last), lengths [B] -> transcripts [B]."""
    (decoded,), _ = tf.nn.ctc_greedy_decoder(
        tf.transpose(logits, [1, 0, 2]), tf.cast(lengths, tf.int32), merge_repeated=True
    )
    return _to_strings(decoded, tf.shape(logits)[0])


def beam_search_decode(
    logits: tf.Tensor, lengths: tf.Tensor, beam_width: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """logits [B, T, C] (blank last), lengths [B] -> (transcripts [B], log probabilities [B])."""
    if not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(
            f"`beam_width` must be a positive integer. Received: beam_width={beam_width}"
        )
    (decoded,), log_probabilities = tf.nn.ctc_beam_search_decoder(
        tf.transpose(logits, [1, 0, 2]), tf.cast(lengths, tf.int32), beam_width, top_paths=1
    )
    return _to_strings(decoded, tf.shape(logits)[0]), log_probabilities[:, 0]


def _to_strings(decoded: tf.SparseTensor, batch_size: tf.Tensor) -> tf.Tensor:
    ids = tf.RaggedTensor.from_value_rowids(
        decoded.values, decoded.indices[:, 0], nrows=tf.cast(batch_size, tf.int64)
    )
    chars = tf.gather(tf.constant(list(ALPHABET)), ids)
    text = tf.strings.reduce_join(chars, axis=-1)
    return tf.strings.strip(tf.strings.regex_replace(text, " +", " "))
