"""The nmt SavedModel serving contract, exercised through `tf.saved_model.load`."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from models.nmt import corpus, decode
from models.nmt.model import build_seq2seq
from models.nmt.signatures import TranslationModule, target_limit
from models.nmt.vocab import EOS_ID, Vocabulary, train_sentencepiece

MAX_INPUT_BYTES = 300
MAX_SOURCE_TOKENS = 12
MAX_TARGET_TOKENS = 20


@pytest.fixture(scope="module")
def vocab():
    pairs = corpus.load_corpus(None).train
    return Vocabulary(train_sentencepiece((p.english for p in pairs), vocab_size=300))


@pytest.fixture(scope="module")
def model(vocab):
    """Random weights: the contract does not depend on what the model learned."""
    tf.random.set_seed(0)
    return build_seq2seq(vocab.size, embedding_dim=16, units=32, num_layers=2)


@pytest.fixture(scope="module")
def module(model, vocab):
    return TranslationModule(
        model,
        vocab.model_proto,
        max_source_tokens=MAX_SOURCE_TOKENS,
        max_target_tokens=MAX_TARGET_TOKENS,
        max_input_bytes=MAX_INPUT_BYTES,
        max_beam_size=8,
    )


@pytest.fixture(scope="module")
def saved_path(module, tmp_path_factory):
    path = tmp_path_factory.mktemp("nmt") / "1"
    tf.saved_model.save(module, str(path), signatures=module.signatures())
    return path


@pytest.fixture(scope="module")
def loaded(saved_path):
    return tf.saved_model.load(str(saved_path)).signatures


SENTENCES = ["Change password", "The file could not be opened.", "Save"]


def _strings(result) -> list[str]:
    return [t.decode() for t in result["translation"].numpy()]


def test_signatures_name_their_inputs_and_outputs(loaded):
    assert set(loaded) == {"serving_default", "beam_search", "greedy"}
    text = tf.TensorSpec([None], tf.string, name="text")
    assert loaded["serving_default"].structured_input_signature[1] == {"text": text}
    assert loaded["greedy"].structured_input_signature[1] == {"text": text}
    assert loaded["beam_search"].structured_input_signature[1] == {
        "text": text,
        "beam_size": tf.TensorSpec([], tf.int32, name="beam_size"),
    }
    for signature in loaded.values():
        assert list(signature.structured_outputs) == ["translation"]


def test_greedy_translation_is_the_decoded_model_output(loaded, model, vocab):
    translations = _strings(loaded["greedy"](text=tf.constant(SENTENCES)))
    expected = []
    # The signature cuts a source after MAX_SOURCE_TOKENS - 1 subwords, then appends EOS.
    sources = [[*ids[: MAX_SOURCE_TOKENS - 1], EOS_ID] for ids in vocab.encode(SENTENCES)]
    longest = target_limit(max(len(ids) for ids in sources))
    for ids in sources:
        source = tf.constant([ids])
        decoded = decode.greedy_decode(model, source, tf.constant(min(longest, MAX_TARGET_TOKENS)))
        expected.append(vocab.decode(decode.ids_to_ragged(decoded).to_list())[0])
    assert translations == expected


def test_beam_search_signatures_agree(loaded):
    default = _strings(loaded["serving_default"](text=tf.constant(SENTENCES)))
    beam_4 = _strings(loaded["beam_search"](text=tf.constant(SENTENCES), beam_size=tf.constant(4)))
    beam_1 = _strings(loaded["beam_search"](text=tf.constant(SENTENCES), beam_size=tf.constant(1)))
    greedy = _strings(loaded["greedy"](text=tf.constant(SENTENCES)))
    assert default == beam_4
    assert beam_1 == greedy
    assert len(default) == len(SENTENCES)


def test_blank_sentences_translate_to_empty_strings(loaded):
    translations = _strings(loaded["serving_default"](text=tf.constant(["", "   ", "Save"])))
    assert translations[:2] == ["", ""]


def test_long_sentences_are_truncated_not_refused(loaded, module):
    long = " ".join(["password"] * 25)  # under MAX_INPUT_BYTES, far over MAX_SOURCE_TOKENS
    assert len(long.encode()) <= MAX_INPUT_BYTES
    assert module.source_ids(tf.constant([long])).shape == (1, MAX_SOURCE_TOKENS)
    (translation,) = _strings(loaded["greedy"](text=tf.constant([long])))
    assert isinstance(translation, str)


@pytest.mark.parametrize(
    ("signature", "inputs", "message"),
    [
        ("serving_default", {"text": []}, "text must hold at least one sentence"),
        ("greedy", {"text": ["x" * (MAX_INPUT_BYTES + 1)]}, f"max_input_bytes={MAX_INPUT_BYTES}"),
        ("serving_default", {"text": [b"caf\xe9 \xff"]}, "Invalid formatting"),
        ("beam_search", {"text": ["Save"], "beam_size": 0}, "beam_size must be from 1 to 8"),
        ("beam_search", {"text": ["Save"], "beam_size": 9}, "beam_size must be from 1 to 8"),
    ],
)
def test_bad_input_is_invalid_argument(loaded, signature, inputs, message):
    arguments = {"text": tf.constant(inputs["text"], tf.string)}
    if "beam_size" in inputs:
        arguments["beam_size"] = tf.constant(inputs["beam_size"])
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded[signature](**arguments)


def test_serves_in_a_fresh_process_without_tfstack(saved_path, loaded, tmp_path):
    expected = _strings(loaded["serving_default"](text=tf.constant(SENTENCES)))
    script = textwrap.dedent(
        f"""
        import sys
        import tensorflow as tf
        import tensorflow_text  # registers the SentencePiece ops
        serve = tf.saved_model.load({str(saved_path)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({SENTENCES!r}))["translation"].numpy()
        assert not any(name.split(".")[0] in ("tfstack", "models") for name in sys.modules)
        print(repr([t.decode() for t in out]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == repr(expected)


def test_module_checks_its_arguments(model, vocab):
    with pytest.raises(ValueError, match="Received: max_source_tokens=1"):
        TranslationModule(model, vocab.model_proto, max_source_tokens=1)
    with pytest.raises(ValueError, match="Received: max_beam_size=0"):
        TranslationModule(model, vocab.model_proto, max_beam_size=0)
    assert np.all(TranslationModule(model, vocab.model_proto).source_ids(["Save"]) > 0)
