"""Stacked-LSTM encoder-decoder with Luong attention and a copy gate.

The architecture of the seeds (See et al. 1606.09274; Kim & Rush 1606.07947): an
encoder of stacked LSTMs over subword embeddings; a decoder of stacked LSTMs started
from the encoder's final states; at each target position, Luong's "general" scores
`h_t^T W_a h_s` over the encoder outputs give a context vector `c_t`, and the
attentional state `tanh(W_c [c_t; h_t])` predicts the next subword.

English and German share one vocabulary, and UI strings, messages and sentences are
full of names, numbers and technical terms that stay as they are. So, as in the
pointer-generator of See, Liu & Manning (2017), a gate `g_t = sigmoid(w [c_t; h_t; x_t])`
mixes the vocabulary distribution with the attention weights scattered onto the source
subwords: `p(w) = g_t p_vocab(w) + (1 - g_t) sum_{s: source_s = w} a_ts`. On small
corpora this is what lets the model learn to copy in a few hundred steps.

Training runs the decoder over the whole target at once (teacher forcing; no input
feeding, so the LSTMs run as sequence layers, several times faster on a CPU).
Decoding calls `encode` once and `decode_step` per output token, with the very layers
(and weights) training used.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf
import tf_keras as keras

from models.nmt.vocab import BOS_ID, PAD_ID, UNK_ID

_EPSILON = 1e-9  # keeps log() finite where neither generating nor copying gives mass


class Memory(NamedTuple):
    """What the decoder attends to: the source ids and the encoder's outputs."""

    source: tf.Tensor  # [B, S] ids, 0-padded
    values: tf.Tensor  # [B, S, units] encoder outputs
    keys: tf.Tensor  # [B, S, units] W_a-projected outputs
    mask: tf.Tensor  # [B, S] true at real tokens

    def repeat(self, times: tf.Tensor) -> Memory:
        """Each sentence `times` times in a row (the beams of beam search)."""
        return Memory(*(tf.repeat(t, times, axis=0) for t in self))


States = list[tuple[tf.Tensor, tf.Tensor]]  # (h, c) per decoder layer


class LuongSeq2Seq(keras.Model):
    """`model((source_ids, target_input_ids))` -> (vocab logits, attention, copy gate)."""

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 128,
        units: int = 256,
        num_layers: int = 2,
        dropout: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("vocab_size", vocab_size),
            ("embedding_dim", embedding_dim),
            ("units", units),
            ("num_layers", num_layers),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.dropout_rate = dropout

        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.encoder_layers = [_lstm(units, f"encoder_{i}") for i in range(num_layers)]
        self.decoder_layers = [_lstm(units, f"decoder_{i}") for i in range(num_layers)]
        self.memory_projection = keras.layers.Dense(units, use_bias=False, name="attention_W_a")
        self.attention = keras.layers.Attention(name="luong_attention")
        self.attentional = keras.layers.Dense(
            units, activation="tanh", use_bias=False, name="attention_W_c"
        )
        self.copy_gate = keras.layers.Dense(1, name="copy_gate")  # logit of g_t
        self.dropout = keras.layers.Dropout(dropout)
        self.output_projection = keras.layers.Dense(vocab_size, name="logits")

    def call(
        self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Teacher forcing: logits [B, T, V], attention [B, T, S], gate logits [B, T]."""
        source, target_input = inputs
        memory, states = self.encode(source, training=training)
        target_mask = tf.not_equal(target_input, PAD_ID)
        embedded = self.embedding(target_input)
        x = self.dropout(embedded, training=training)
        for layer, (h, c) in zip(self.decoder_layers, states, strict=True):
            x, _, _ = layer(x, initial_state=[h, c], mask=target_mask, training=training)
            x = self.dropout(x, training=training)
        return self._predict(x, embedded, memory, target_mask, training)

    def target_log_probs(
        self,
        source: tf.Tensor,
        target_input: tf.Tensor,
        target_output: tf.Tensor,
        training: bool = False,
    ) -> tf.Tensor:
        """log p(target_output[b, t]) [B, T] under the generate/copy mixture."""
        logits, attention, gate = self((source, target_input), training=training)
        generated = tf.gather(tf.nn.log_softmax(logits), target_output[..., None], batch_dims=2)
        same_token = tf.cast(source[:, None, :] == target_output[:, :, None], attention.dtype)
        copied = tf.reduce_sum(attention * same_token, axis=-1)
        # log g and log(1 - g) from the gate's logit: exact where the sigmoid saturates.
        return tf.reduce_logsumexp(
            tf.stack(
                [
                    tf.math.log_sigmoid(gate) + generated[..., 0],
                    tf.math.log_sigmoid(-gate) + tf.math.log(copied + _EPSILON),
                ]
            ),
            axis=0,
        )

    def encode(self, source: tf.Tensor, training: bool = False) -> tuple[Memory, States]:
        """source ids [B, S] (0-padded) -> (memory, per-layer final (h, c))."""
        mask = tf.not_equal(source, PAD_ID)
        x = self.dropout(self.embedding(source), training=training)
        states = []
        for layer in self.encoder_layers:
            x, h, c = layer(x, mask=mask, training=training)
            x = self.dropout(x, training=training)
            states.append((h, c))
        return Memory(source, x, self.memory_projection(x), mask), states

    def decode_step(
        self, previous: tf.Tensor, states: States, memory: Memory
    ) -> tuple[tf.Tensor, States]:
        """One inference step: previous ids [B] -> (log-probabilities [B, V], new states)."""
        embedded = self.embedding(previous)
        x = embedded
        new_states = []
        for layer, (h, c) in zip(self.decoder_layers, states, strict=True):
            x, (h, c) = layer.cell(x, [h, c], training=False)
            new_states.append((h, c))
        logits, attention, gate = self._predict(
            x[:, None], embedded[:, None], memory, None, training=False
        )
        generate = tf.sigmoid(gate)
        batch = tf.shape(previous)[0]
        flat_ids = memory.source + tf.range(batch)[:, None] * self.vocab_size
        copied = tf.math.unsorted_segment_sum(
            tf.reshape(attention[:, 0], [-1]), tf.reshape(flat_ids, [-1]), batch * self.vocab_size
        )
        probs = generate * tf.nn.softmax(logits[:, 0]) + (1.0 - generate) * tf.reshape(
            copied, [batch, self.vocab_size]
        )
        # PAD, UNK and BOS are never output (copying a source UNK would print " ⁇ ").
        never = tf.one_hot([PAD_ID, UNK_ID, BOS_ID], self.vocab_size, on_value=-1e9)
        return tf.math.log(probs + _EPSILON) + tf.reduce_sum(never, axis=0), new_states

    def get_config(self) -> dict:
        return {
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout_rate,
        }

    def _predict(self, queries, embedded, memory: Memory, target_mask, training):
        context, attention = self.attention(
            [queries, memory.values, memory.keys],
            mask=[target_mask, memory.mask],
            return_attention_scores=True,
            training=training,
        )
        features = tf.concat([context, queries], axis=-1)
        logits = self.output_projection(self.dropout(self.attentional(features), training=training))
        gate = self.copy_gate(tf.concat([features, embedded], axis=-1))
        return logits, attention, gate[..., 0]


def build_seq2seq(vocab_size: int, **kwargs) -> LuongSeq2Seq:
    """A built model (weights created), ready for `load_weights` or training."""
    model = LuongSeq2Seq(vocab_size, **kwargs)
    ids = tf.ones([1, 2], tf.int32)
    model((ids, ids))
    return model


def _lstm(units: int, name: str) -> keras.layers.RNN:
    """A plain RNN over an LSTMCell: `keras.layers.LSTM` would also build a cuDNN variant
    per call, which on a CPU costs ~4x the tracing time and runs slower."""
    cell = keras.layers.LSTMCell(units, name=f"{name}_cell")
    return keras.layers.RNN(cell, return_sequences=True, return_state=True, name=name)
