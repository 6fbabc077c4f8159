"""Greedy and beam-search decoding as TensorFlow graphs (`tf.while_loop`), for serving.

Both take source ids [B, S] (0-padded, ending in EOS) and return output ids [B, T]:
the decoded subwords, then EOS, then PAD; `ids_to_ragged` keeps what comes before the
first EOS. Decoding stops after `max_length` tokens or once every sentence has ended.

Beam search keeps `beam_size` hypotheses per sentence, ranked by the sum of their
token log-probabilities; a finished hypothesis (it produced EOS) keeps its score and
only pads on. The answer is the hypothesis with the best score divided by
`length ** length_penalty` (1.0: the mean log-probability per token), which stops the
search from preferring translations that are merely short. Beam size 1 is greedy.
"""

from __future__ import annotations

import tensorflow as tf

from models.nmt.model import LuongSeq2Seq
from models.nmt.vocab import BOS_ID, EOS_ID, PAD_ID

_NEG_INF = -1e9


def greedy_decode(model: LuongSeq2Seq, source: tf.Tensor, max_length: tf.Tensor) -> tf.Tensor:
    """The most probable next subword at every step; ids [B, T]."""
    memory, states = model.encode(source)
    batch = tf.shape(source)[0]

    def not_done(step, previous, finished, states, tokens):
        return (step < max_length) & ~tf.reduce_all(finished)

    def decode_one(step, previous, finished, states, tokens):
        log_probs, states = model.decode_step(previous, states, memory)
        chosen = tf.where(finished, PAD_ID, tf.argmax(log_probs, axis=-1, output_type=tf.int32))
        return step + 1, chosen, finished | (chosen == EOS_ID), states, tokens.write(step, chosen)

    _, _, _, _, tokens = tf.while_loop(
        not_done,
        decode_one,
        (
            tf.constant(0),
            tf.fill([batch], BOS_ID),
            tf.zeros([batch], tf.bool),
            states,
            tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
        ),
    )
    return _batch_major(tokens.stack(), batch)


def beam_search_decode(
    model: LuongSeq2Seq,
    source: tf.Tensor,
    beam_size: tf.Tensor,
    max_length: tf.Tensor,
    length_penalty: float = 1.0,
) -> tf.Tensor:
    """The best of `beam_size` hypotheses per sentence (see the module docstring); [B, T]."""
    beam_size = tf.convert_to_tensor(beam_size, tf.int32)
    batch = tf.shape(source)[0]
    memory, states = model.encode(source)
    memory = memory.repeat(beam_size)
    states = [(tf.repeat(h, beam_size, axis=0), tf.repeat(c, beam_size, axis=0)) for h, c in states]
    vocab = model.vocab_size
    # Finished hypotheses continue with PAD only, at no cost.
    pad_only = tf.one_hot(PAD_ID, vocab, on_value=0.0, off_value=_NEG_INF)
    # All beams start identical: only the first may expand, or the beam holds copies.
    first_only = tf.concat([[0.0], tf.fill([beam_size - 1], _NEG_INF)], axis=0)

    def not_done(step, previous, scores, finished, lengths, states, history):
        return (step < max_length) & ~tf.reduce_all(finished)

    def expand(step, previous, scores, finished, lengths, states, history):
        log_probs, states = model.decode_step(previous, states, memory)
        log_probs = tf.reshape(log_probs, [batch, beam_size, vocab])
        log_probs = tf.where(finished[..., None], pad_only, log_probs)
        candidates = tf.reshape(scores[..., None] + log_probs, [batch, beam_size * vocab])
        scores, chosen = tf.math.top_k(candidates, k=beam_size)
        origin, token = chosen // vocab, chosen % vocab
        flat_origin = tf.reshape(origin + tf.range(batch)[:, None] * beam_size, [-1])
        states = [(tf.gather(h, flat_origin), tf.gather(c, flat_origin)) for h, c in states]
        was_finished = tf.gather(finished, origin, batch_dims=1)
        lengths = tf.gather(lengths, origin, batch_dims=1) + tf.cast(~was_finished, tf.int32)
        history = tf.concat([tf.gather(history, origin, batch_dims=1), token[..., None]], axis=2)
        finished = was_finished | (token == EOS_ID)
        return step + 1, tf.reshape(token, [-1]), scores, finished, lengths, states, history

    initial = (
        tf.constant(0),
        tf.fill([batch * beam_size], BOS_ID),
        tf.tile(first_only[None], [batch, 1]),
        tf.zeros([batch, beam_size], tf.bool),
        tf.zeros([batch, beam_size], tf.int32),
        states,
        tf.zeros([batch, beam_size, 0], tf.int32),
    )
    invariants = tf.nest.map_structure(lambda t: tf.TensorShape([None] * t.shape.rank), initial)
    _, _, scores, _, lengths, _, history = tf.while_loop(
        not_done, expand, initial, shape_invariants=invariants
    )
    lengths = tf.cast(tf.maximum(lengths, 1), tf.float32)
    best = tf.argmax(scores / lengths**length_penalty, axis=1, output_type=tf.int32)
    return tf.gather(history, best, batch_dims=1)


def ids_to_ragged(ids: tf.Tensor) -> tf.RaggedTensor:
    """[B, T] decoder output -> the subword ids before each row's first EOS."""
    before_eos = tf.cumsum(tf.cast(ids == EOS_ID, tf.int32), axis=1, exclusive=True) == 0
    return tf.ragged.boolean_mask(ids, before_eos & (ids != EOS_ID) & (ids != PAD_ID))


def _batch_major(time_major: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """[T, B] -> [B, T]; [B, 0] when nothing was decoded."""
    return tf.reshape(tf.transpose(time_major), [batch, -1])
