"""Sentences, voices, synthesis, the audio cache and training batches (noise: test_speech_noise)."""

import numpy as np
import pytest

from models.speech import alphabet, corpus, data, noise, synth
from models.speech.audio import read_wav
from models.speech.features import FRAME_STEP

needs_tools = pytest.mark.skipif(
    bool(synth.missing_tools()),
    reason=f"speech synthesis needs Debian packages {', '.join(synth.missing_tools())} "
    "(`make speech-tools` installs them as root)",
)


def test_sentence_split_is_stable_and_every_heldout_word_is_trained():
    sentences = corpus.all_sentences()
    train, heldout = corpus.split_sentences(sentences)
    assert 200 <= len(sentences) <= 300 and 0.1 < len(heldout) / len(sentences) < 0.2
    assert not set(train) & set(heldout)
    assert (train, heldout) == corpus.split_sentences(list(reversed(sentences)))
    assert {w for s in heldout for w in s.split()} <= {w for s in train for w in s.split()}
    assert all(corpus.normalize_transcript(s) == s for s in sentences)
    with pytest.raises(ValueError, match=r"heldout_fraction=1\.0"):
        corpus.split_sentences(sentences, 1.0)


def test_training_never_hears_a_heldout_voice():
    train_names = {voice.name for voice in synth.TRAIN_VOICES}
    heldout_names = {voice.name for voice in synth.HELDOUT_VOICES}
    assert len(train_names) == len(synth.TRAIN_VOICES) and not train_names & heldout_names
    assert {v.engine for v in synth.HELDOUT_VOICES} == {"espeak-ng", "flite"}
    assert not {v.voice for v in synth.HELDOUT_VOICES} & {v.voice for v in synth.TRAIN_VOICES}
    with pytest.raises(ValueError, match="engine=say"):
        synth.Voice("say", "alex")
    with pytest.raises(ValueError, match="speed=3"):
        synth.Voice("flite", "slt", speed=3)


def test_utterances_are_drawn_per_voice():
    sentences = corpus.all_sentences()
    first = data.utterances(synth.TRAIN_VOICES[:2], sentences, 5, seed=0)
    assert len(first) == 10 and len({u.text for u in first[:5]}) == 5
    more = data.utterances(synth.TRAIN_VOICES[:3], sentences, 5, seed=0)
    assert more[:10] == first  # adding a voice changes no other voice's sentences
    assert data.utterances(synth.TRAIN_VOICES[:1], sentences[:3], 5, seed=0)[-1].text in sentences
    assert first != data.utterances(synth.TRAIN_VOICES[:2], sentences, 5, seed=1)


@needs_tools
@pytest.mark.parametrize("voice", [synth.TRAIN_VOICES[0], synth.HELDOUT_VOICES[-1]])
def test_synthesis_writes_16khz_speech_once_into_the_cache(voice, tmp_path):
    item = data.Utterance(voice, "turn on the lights in the kitchen")
    (path,) = data.synthesize_all([item], tmp_path, progress=False)
    assert path == item.path(tmp_path) and path.parent.name == voice.name
    samples = read_wav(path)
    assert 1.0 < len(samples) / synth.SAMPLE_RATE < 4.0
    assert np.sqrt(np.mean(samples**2)) > 0.01  # speech, not silence
    written = path.stat().st_mtime_ns
    assert data.synthesize_all([item], tmp_path, progress=False) == [path]
    assert path.stat().st_mtime_ns == written
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


@needs_tools
def test_training_batches_hold_features_and_labels_of_the_utterances(tmp_path):
    items = data.utterances(synth.TRAIN_VOICES[:2], corpus.all_sentences(), 3, seed=0)
    waveforms = data.load_waveforms(items, tmp_path, progress=False)
    transcripts = [item.text for item in items]
    batches = data.training_batches(
        waveforms, transcripts, noise.load_noise(tmp_path, "train"), batch_size=4, seed=0
    )
    (feats, frames), (labels, label_lengths) = next(iter(batches))
    assert feats.shape[0] == 4 and feats.shape[2] == 40
    assert max(frames) == feats.shape[1]
    frames_of = {}  # transcript -> frame counts of the utterances saying it
    for waveform, text in zip(waveforms, transcripts, strict=True):
        frames_of.setdefault(text, set()).add(-(-len(waveform) // FRAME_STEP))
    for row in range(4):
        text = "".join(alphabet.ALPHABET[i] for i in labels[row, : label_lengths[row]])
        assert int(frames[row]) in frames_of[text]
