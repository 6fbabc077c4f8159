"""The speech SavedModel's serving contract, exercised through `tf.saved_model.load`."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.speech import family
from models.speech.audio import wav_bytes
from models.speech.model import build_recognizer
from models.speech.recognize import Transcriber
from models.speech.signatures import SpeechRecognitionModule

MAX_SECONDS = 3.0


def _chirp(seconds: float, start_hz: float, rate: int = 16000) -> np.ndarray:
    """A sweep, so that an untrained model emits something other than blanks."""
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return (0.3 * np.sin(2 * np.pi * (start_hz + 400.0 * t) * t)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    """Untrained, with its output layer scaled up: peaked distributions, so that greedy
    decoding does not hinge on float rounding between a batch and a single utterance."""
    keras.utils.set_random_seed(5)
    model = build_recognizer(conv_filters=(8, 8), rnn_units=16, rnn_layers=1, dropout=0.0)
    layer = model.get_layer("logits")
    layer.set_weights([weights * 20.0 for weights in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def saved_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "1"
    module = SpeechRecognitionModule(model, beam_width=4, max_seconds=MAX_SECONDS)
    tf.saved_model.save(module, str(path), signatures=module.signatures())
    return path


@pytest.fixture(scope="module")
def loaded(saved_path):
    return tf.saved_model.load(str(saved_path)).signatures


@pytest.fixture(scope="module")
def waveforms():
    return [_chirp(1.3, 200.0), _chirp(0.45, 900.0), _chirp(2.0, 2500.0)]


def test_signatures_take_wav_strings_and_return_strings(loaded):
    assert set(loaded) == {"serving_default", "beam_search"}
    for name, outputs in (
        ("serving_default", {"transcript"}),
        ("beam_search", {"transcript", "log_probability"}),
    ):
        _, inputs = loaded[name].structured_input_signature
        assert inputs == {"audio_bytes": tf.TensorSpec([None], tf.string, name="audio_bytes")}
        assert set(loaded[name].structured_outputs) == outputs


def test_served_transcripts_equal_the_keras_models(loaded, model, waveforms):
    batch = tf.constant([wav_bytes(w) for w in waveforms])
    served = [
        t.decode() for t in loaded["serving_default"](audio_bytes=batch)["transcript"].numpy()
    ]
    assert served == Transcriber(model)(waveforms)
    assert any(served)  # an untrained model that said nothing would prove little
    beam = loaded["beam_search"](audio_bytes=batch)
    # An untrained model's near-ties make beams sensitive to rounding: only the form is
    # checked here; test_speech_end_to_end compares beams of the trained model.
    assert beam["transcript"].shape == (3,) and all(beam["transcript"].numpy())
    assert beam["log_probability"].shape == (3,) and np.all(beam["log_probability"] <= 0)


def test_batch_of_mixed_lengths_transcribes_each_as_alone(loaded, waveforms):
    serve = loaded["serving_default"]
    together = serve(audio_bytes=tf.constant([wav_bytes(w) for w in waveforms]))["transcript"]
    alone = [serve(audio_bytes=tf.constant([wav_bytes(w)]))["transcript"][0] for w in waveforms]
    assert together.numpy().tolist() == [t.numpy() for t in alone]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([], "audio_bytes must hold at least one WAV file"),
        ([b"RIFF but not really"], "Header mismatch|RIFF|WAV"),
        (
            [wav_bytes(_chirp(1.0, 300.0, rate=8000), sample_rate=8000)],
            "must be sampled at 16000 Hz",
        ),
        ([wav_bytes(np.stack([_chirp(0.5, 300.0)] * 2, axis=1), channels=2)], "must be mono"),
        ([wav_bytes(_chirp(MAX_SECONDS + 0.5, 300.0))], f"more than {MAX_SECONDS:g} s"),
    ],
)
@pytest.mark.parametrize("signature", ["serving_default", "beam_search"])
def test_bad_input_is_invalid_argument(loaded, signature, batch, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded[signature](audio_bytes=tf.constant(batch, tf.string))


def test_serves_in_a_fresh_process_without_tfstack(saved_path, waveforms, loaded, tmp_path):
    (tmp_path / "in.wav").write_bytes(wav_bytes(waveforms[0]))
    script = textwrap.dedent(
        f"""
        import sys
        import tensorflow as tf
        serve = tf.saved_model.load({str(saved_path)!r}).signatures["serving_default"]
        out = serve(audio_bytes=tf.constant([open("in.wav", "rb").read()]))["transcript"]
        assert not any(name.split(".")[0] in ("tfstack", "models") for name in sys.modules)
        print(repr(out.numpy()[0]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = loaded["serving_default"](audio_bytes=tf.constant([wav_bytes(waveforms[0])]))
    assert result.stdout.strip().splitlines()[-1] == repr(expected["transcript"].numpy()[0])


def test_warmup_request_is_accepted(loaded):
    (audio,) = family.warmup_inputs()["audio_bytes"]
    assert loaded["serving_default"](audio_bytes=tf.constant([audio]))["transcript"].shape == (1,)


def test_module_checks_its_arguments(model):
    with pytest.raises(ValueError, match="beam_width=0"):
        SpeechRecognitionModule(model, beam_width=0)
    with pytest.raises(ValueError, match="max_seconds=0"):
        SpeechRecognitionModule(model, max_seconds=0)
