"""Features, model masking and CTC decoding of the speech family (no synthesis tools needed)."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.speech import alphabet, corpus, features
from models.speech.audio import read_wav, wav_bytes
from models.speech.decode import beam_search_decode, greedy_decode
from models.speech.model import TIME_STRIDE, build_recognizer, output_frames
from models.speech.recognize import Transcriber, logits


def _tone(seconds: float, hz: float = 300.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _one_hot_logits(ids: list[int], peak: float = 10.0) -> np.ndarray:
    scores = np.zeros((len(ids), alphabet.NUM_CLASSES), np.float32)
    scores[np.arange(len(ids)), ids] = peak
    return scores


@pytest.fixture(scope="module")
def model():
    """Untrained; its output layer scaled up so that greedy decoding of a batch and of a
    single utterance cannot differ by float rounding of near-equal logits."""
    keras.utils.set_random_seed(3)
    model = build_recognizer(conv_filters=(8, 8), rnn_units=16, rnn_layers=2, dropout=0.0)
    layer = model.get_layer("logits")
    layer.set_weights([weights * 20.0 for weights in layer.get_weights()])
    return model


def test_wav_round_trip_keeps_16_bit_levels(tmp_path):
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.2], np.float32)
    path = tmp_path / "x.wav"
    path.write_bytes(wav_bytes(samples))
    np.testing.assert_allclose(read_wav(path), [0.0, 0.5, -0.5, 32767 / 32768, -1.0])
    decoded = features.decode_wav(tf.constant(path.read_bytes()))
    np.testing.assert_allclose(decoded.numpy(), read_wav(path))


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (b"definitely not a WAV file", "Header mismatch"),
        (wav_bytes(_tone(0.5, rate=8000), sample_rate=8000), "must be sampled at 16000 Hz"),
        (wav_bytes(np.stack([_tone(0.5)] * 2, axis=1), channels=2), "must be mono"),
        (wav_bytes(np.zeros(0, np.float32)), "holds no samples"),
        (wav_bytes(_tone(3.0)), "more than 2 s"),
    ],
)
def test_decode_wav_refuses_what_the_model_cannot_hear(audio, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        features.decode_wav(tf.constant(audio), max_seconds=2.0)


def test_features_are_normalised_per_utterance_and_zero_beyond_its_frames():
    waveforms = np.zeros((2, 16000), np.float32)
    waveforms[0] = _tone(1.0) + 0.01 * np.random.default_rng(0).standard_normal(16000)
    waveforms[1, :8000] = _tone(0.5, hz=900.0)
    feats, frames = features.waveform_features(tf.constant(waveforms), tf.constant([16000, 8000]))
    assert feats.shape == (2, 100, features.MEL_BINS)
    assert frames.numpy().tolist() == [100, 50]
    real = feats[1, :50].numpy()
    np.testing.assert_allclose(real.mean(axis=0), 0.0, atol=1e-4)
    assert np.all(feats[1, 50:].numpy() == 0.0)
    alone, _ = features.waveform_features(tf.constant(waveforms[1:, :8000]), tf.constant([8000]))
    np.testing.assert_allclose(alone[0].numpy(), real, atol=1e-4)


def test_padded_rows_give_the_logits_they_give_alone(model):
    lengths = [16000, 9040, 4321]  # odd frame counts too: strides must align the same way
    rng = np.random.default_rng(1)
    batch = np.zeros((3, max(lengths)), np.float32)
    for row, length in enumerate(lengths):
        batch[row, :length] = rng.uniform(-0.3, 0.3, length)
    together, steps = logits(model, tf.constant(batch), tf.constant(lengths))
    for row, length in enumerate(lengths):
        alone, alone_steps = logits(model, tf.constant(batch[row : row + 1, :length]), [length])
        assert steps[row] == alone_steps[0] == alone.shape[1]
        np.testing.assert_allclose(together[row, : steps[row]], alone[0], atol=2e-3)


def test_output_frames_follow_the_time_stride(model):
    frames = tf.constant([1, 2, 3, 4, 100])
    expected = [-(-f // TIME_STRIDE) for f in (1, 2, 3, 4, 100)]
    assert output_frames(frames).numpy().tolist() == expected
    feats = tf.zeros([1, 100, features.MEL_BINS])
    assert model([feats, tf.constant([100])]).shape == (1, expected[-1], alphabet.NUM_CLASSES)


def test_greedy_and_beam_search_spell_the_best_path():
    text = "call  mom"  # doubled letters need a blank between them; spaces collapse
    ids = []
    for char in text:
        if ids and ids[-1] == alphabet.encode(char)[0]:
            ids.append(alphabet.BLANK)
        ids += alphabet.encode(char) * 2  # each letter held for two steps
    ids = [alphabet.BLANK, *ids, alphabet.BLANK]
    scores = np.stack([_one_hot_logits(ids), _one_hot_logits(ids)])
    lengths = tf.constant([len(ids), len(ids) - 5])  # the second row stops before "om"
    greedy = greedy_decode(tf.constant(scores), lengths).numpy().tolist()
    assert greedy == [b"call mom", b"call m"]
    beam, log_probability = beam_search_decode(tf.constant(scores), lengths, beam_width=4)
    assert beam.numpy().tolist() == greedy
    assert np.all(log_probability.numpy() > -1.0)


def test_blank_only_logits_decode_to_empty_strings():
    scores = np.stack([_one_hot_logits([alphabet.BLANK] * 5)] * 2)
    assert greedy_decode(tf.constant(scores), tf.constant([5, 0])).numpy().tolist() == [b"", b""]


def test_transcriber_gives_each_waveform_its_own_transcript(model):
    waveforms = [_tone(0.4), _tone(1.1, 600.0), _tone(0.7, 1200.0)]
    transcriber = Transcriber(model, batch_size=2)  # sorted into batches [0.4, 0.7], [1.1]
    together = transcriber(waveforms)
    assert together == [transcriber([waveform])[0] for waveform in waveforms]


def test_alphabet_and_transcript_normalisation():
    assert (
        corpus.normalize_transcript("  Turn ON the Lights, please! ") == "turn on the lights please"
    )
    assert alphabet.encode("a b'") == [2, 0, 3, 1]
    with pytest.raises(ValueError, match="outside the alphabet"):
        alphabet.encode("Turn")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conv_filters": (8,)}, "conv_filters"),
        ({"rnn_units": 0}, "rnn_units=0"),
        ({"rnn_layers": 0}, "rnn_layers=0"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"mel_bins": 42}, "mel_bins=42"),
    ],
)
def test_builder_checks_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_recognizer(**kwargs)
