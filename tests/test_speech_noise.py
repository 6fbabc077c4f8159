"""Noise for the speech family: sox's synthetic colours and lincity-ng-data's recordings, split
into training and evaluation parts, mixed at an SNR; without the recordings, synthetic only."""

import hashlib
import subprocess
import warnings

import numpy as np
import pytest

from models.speech import evaluate as sp_evaluate
from models.speech import noise, recorded_noise, synth
from models.speech.audio import read_wav, wav_bytes

needs_tools = pytest.mark.skipif(
    bool(synth.missing_tools()),
    reason=f"speech audio needs Debian packages {', '.join(synth.missing_tools())} "
    "(`make speech-tools` installs them as root)",
)
needs_recordings = pytest.mark.skipif(
    not recorded_noise.split_files(),
    reason=f"recorded noise needs Debian package {recorded_noise.PACKAGE} (`make speech-tools`)",
)


@pytest.fixture(scope="module")
def noise_cache(tmp_path_factory):
    """One cache for the module: sox converts each noise file once."""
    return tmp_path_factory.mktemp("speech-noise-cache")


def _seconds(path) -> float:
    result = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True)
    return float(result.stdout)


@needs_recordings
def test_training_and_evaluation_never_share_a_recording():
    split = recorded_noise.split_files()
    assert list(split) == list(recorded_noise.CATEGORIES)
    digests = {part: set() for part in recorded_noise.PARTS}
    for category, parts in split.items():
        assert parts["train"] and parts["eval"], category
        for part, paths in parts.items():
            digests[part] |= {hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}
        # Held out: the last take of each sound, e.g. RailTrain3 (RailTrain1, 2 train).
        assert all(path.stem[-1].isdigit() for path in parts["eval"]), category
    assert not digests["train"] & digests["eval"]  # also no copy under another name
    every = [path.stem for parts in split.values() for paths in parts.values() for path in paths]
    assert len(every) == len(set(every))
    assert not {"Click", "WindowOpen", "WindowClose", "PowerLine1", "SubstationOn"} & set(every)


@needs_tools
@needs_recordings
def test_recorded_noise_is_converted_once_to_16khz_mono(noise_cache):
    split = recorded_noise.split_files()
    recorded = {part: recorded_noise.load_recorded(noise_cache, part) for part in ("train", "eval")}
    for category, parts in split.items():
        for part, sources in parts.items():
            converted = [recorded_noise.converted_path(path, noise_cache) for path in sources]
            lengths = [len(read_wav(path)) for path in converted]  # read_wav: 16 kHz mono PCM16
            for source, length in zip(sources, lengths, strict=True):
                # Silence trimmed from the ends only: most of each recording stays.
                assert 0.6 < length / (_seconds(source) * synth.SAMPLE_RATE) <= 1.001, source
            joined = recorded[part][category]
            assert len(joined) == sum(lengths)
            assert np.sqrt(np.mean(np.square(joined))) == pytest.approx(1.0, abs=0.05)
        assert len(recorded["eval"][category]) > 10 * synth.SAMPLE_RATE, category
    directory = converted[0].parent
    written = {path: path.stat().st_mtime_ns for path in directory.iterdir()}
    assert all(not path.name.startswith(".") for path in written)  # no temp files left
    recorded_noise.load_recorded(noise_cache, "eval")
    assert {path: path.stat().st_mtime_ns for path in directory.iterdir()} == written


@needs_tools
def test_split_keeps_the_last_take_of_each_sound_for_evaluation(tmp_path):
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    rng = np.random.default_rng(0)

    def write(name: str, rate: int = 11025, channels: int = 1) -> None:
        samples = 0.2 * rng.standard_normal((2 * rate, channels)).clip(-4, 4)
        (sounds / f"{name}.wav").write_bytes(wav_bytes(samples, rate, channels))

    for name in ("TraficHigh1", "TraficHigh2", "TraficHigh3", "Click", "RailTrain1"):
        write(name)
    write("TraficLow1", rate=44100, channels=2)
    street = recorded_noise.split_files(sounds).pop("street")
    assert [path.stem for path in street["train"]] == ["TraficHigh1", "TraficHigh2", "TraficLow1"]
    assert [path.stem for path in street["eval"]] == ["TraficHigh3"]
    # RailTrain has one take (training only): transport, with nothing to evaluate, is left out.
    assert list(recorded_noise.split_files(sounds)) == ["street"]
    train = recorded_noise.load_recorded(tmp_path / "cache", "train", sounds)["street"]
    assert len(train) == pytest.approx(6 * synth.SAMPLE_RATE, rel=0.01)  # 3 x 2 s, stereo downmixed
    with pytest.raises(ValueError, match="part=test"):
        recorded_noise.load_recorded(tmp_path / "cache", "test", sounds)


@needs_tools
def test_noise_is_mixed_at_the_requested_snr(noise_cache):
    train = noise.load_noise(noise_cache, "train")
    evaluation = noise.load_noise(noise_cache, "eval")
    assert list(train) == list(evaluation) and set(noise.NOISE_TYPES) <= set(train)
    assert len(train["pink"]) == noise.TRAIN_SECONDS * synth.SAMPLE_RATE
    assert len(evaluation["pink"]) == (noise.NOISE_SECONDS - noise.TRAIN_SECONDS) * 16000
    rng = np.random.default_rng(0)
    speech = 0.05 * np.sin(np.arange(16000) / 7.0).astype(np.float32)  # quiet: no clipping
    for kind in evaluation:
        for snr_db in (0, 10, 20):
            mixed = noise.mix_at_snr(speech, evaluation[kind], snr_db, rng)
            measured = 10 * np.log10(np.mean(speech**2) / np.mean((mixed - speech) ** 2))
            assert measured == pytest.approx(snr_db, abs=0.1), kind
    with pytest.raises(ValueError, match="shorter than speech"):
        noise.mix_at_snr(speech, speech[:100], 10, rng)


@needs_tools
@needs_recordings
def test_training_and_evaluation_mix_every_recorded_category(noise_cache):
    kinds = list(noise.load_noise(noise_cache, "train"))
    assert kinds == [*noise.NOISE_TYPES, *recorded_noise.CATEGORIES]
    assert [noise.noise_class(kind) for kind in kinds] == ["synthetic"] * 3 + ["recorded"] * 4
    with pytest.raises(ValueError, match="kind=violet"):
        noise.noise_class("violet")


@needs_tools
def test_without_recordings_noise_is_synthetic_only_and_says_so_once(noise_cache, tmp_path):
    absent = tmp_path / "no-lincity-ng-data"
    with pytest.warns(UserWarning, match="synthetic noise only"):
        assert list(noise.load_noise(noise_cache, "eval", absent)) == list(noise.NOISE_TYPES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        noise.load_noise(noise_cache, "train", absent)
    # The evaluation records which noise it used, so its figures never change silently.
    tests = sp_evaluate.test_set(progress=False, sounds_dir=absent)
    assert sp_evaluate.noise_kinds(tests) == {"synthetic": list(noise.NOISE_TYPES), "recorded": []}
