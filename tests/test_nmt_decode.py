"""Greedy and beam-search decoding in the graph, checked against plain Python searches."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from models.nmt import decode
from models.nmt.model import build_seq2seq
from models.nmt.vocab import BOS_ID, EOS_ID, PAD_ID

VOCAB = 7


@pytest.fixture(scope="module")
def model():
    """Random weights, with a spread-out output layer so the searches have choices to make."""
    tf.random.set_seed(3)
    model = build_seq2seq(VOCAB, embedding_dim=8, units=16, num_layers=2, dropout=0.0)
    layer = model.output_projection
    rng = np.random.default_rng(1)
    layer.set_weights([rng.normal(0, 1.5, w.shape).astype("float32") for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def source():
    return tf.constant([[4, 5, 6, EOS_ID], [6, 4, EOS_ID, PAD_ID], [5, EOS_ID, PAD_ID, PAD_ID]])


def _next_token_log_probs(model, sentence, depth) -> dict[tuple, np.ndarray]:
    """prefix -> log-probabilities of the next token, for every prefix of fewer than `depth`
    tokens without EOS, computed level by level with `decode_step` (one row per prefix)."""
    memory, states = model.encode(tf.constant(sentence[None]))
    prefixes, previous, table = [()], tf.constant([BOS_ID]), {}
    for _ in range(depth):
        log_probs, states = model.decode_step(previous, states, memory.repeat(len(prefixes)))
        table.update(zip(prefixes, log_probs.numpy(), strict=True))
        rows = [(i, t) for i in range(len(prefixes)) for t in range(VOCAB) if t != EOS_ID]
        parents = [i for i, _ in rows]
        states = [(tf.gather(h, parents), tf.gather(c, parents)) for h, c in states]
        prefixes = [(*prefixes[i], t) for i, t in rows]
        previous = tf.constant([t for _, t in rows])
    return table


def _sequence_log_prob(table, tokens) -> float:
    return sum(table[tuple(tokens[:i])][t] for i, t in enumerate(tokens))


def _strip(row) -> list[int]:
    row = list(row)
    return row[: row.index(EOS_ID)] if EOS_ID in row else [t for t in row if t != PAD_ID]


def test_greedy_follows_the_argmax_at_every_step(model, source):
    max_length = 4
    ids = decode.greedy_decode(model, source, tf.constant(max_length)).numpy()
    assert ids.shape[0] == 3 and ids.shape[1] <= max_length
    for row, sentence in zip(ids, source.numpy(), strict=True):
        table = _next_token_log_probs(model, sentence, max_length)
        expected = []
        while len(expected) < max_length and EOS_ID not in expected:
            expected.append(int(np.argmax(table[tuple(expected)])))
        assert list(row[: len(expected)]) == expected
        assert all(t == PAD_ID for t in row[len(expected) :])


def test_beam_of_one_is_greedy(model, source):
    greedy = decode.greedy_decode(model, source, tf.constant(6))
    beam = decode.beam_search_decode(model, source, tf.constant(1), tf.constant(6))
    assert [_strip(r) for r in beam.numpy()] == [_strip(r) for r in greedy.numpy()]


def test_wide_beam_finds_the_best_normalized_hypothesis(model, source):
    """With a beam wider than all prefixes, beam search is exhaustive: compare with brute force."""
    max_length = 3
    beam = decode.beam_search_decode(model, source, tf.constant(VOCAB**2), tf.constant(max_length))
    for row, sentence in zip(beam.numpy(), source.numpy(), strict=True):
        table = _next_token_log_probs(model, sentence, max_length)
        candidates = [
            list(tokens)
            for length in range(1, max_length + 1)
            for tokens in itertools.product(range(VOCAB), repeat=length)
            if EOS_ID not in tokens[:-1] and (length == max_length or tokens[-1] == EOS_ID)
        ]
        best = max(candidates, key=lambda t: _sequence_log_prob(table, t) / len(t))
        assert list(row[: len(best)]) == best
        # The search is not trivially greedy here: its answer beats greedy's.
        greedy = [int(np.argmax(table[()]))]
        while len(greedy) < max_length and greedy[-1] != EOS_ID:
            greedy.append(int(np.argmax(table[tuple(greedy)])))
        assert _sequence_log_prob(table, best) / len(best) >= _sequence_log_prob(
            table, greedy
        ) / len(greedy)


def test_ids_to_ragged_keeps_tokens_before_the_first_eos():
    ids = tf.constant([[5, 6, EOS_ID, 7, PAD_ID], [4, 4, 4, 4, 4], [EOS_ID, PAD_ID, 5, 5, 5]])
    assert decode.ids_to_ragged(ids).to_list() == [[5, 6], [4, 4, 4, 4, 4], []]
