"""16 kHz mono PCM16 WAV files in and out of NumPy: the audio format the model serves."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from models.speech.synth import SAMPLE_RATE


def read_wav(path: Path) -> np.ndarray:
    """float32 samples in [-1, 1) of a 16 kHz mono PCM16 WAV."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path} is not a 16 kHz mono PCM16 WAV")
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    """A PCM16 WAV file of float `samples` in [-1, 1] ([frames] or [frames, channels])."""
    levels = np.round(to_pcm16_levels(samples) * 32768.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(levels.tobytes())
    return buffer.getvalue()


def to_pcm16_levels(samples: np.ndarray) -> np.ndarray:
    """Clip and round float samples to what PCM16 can hold (still float32 in [-1, 1))."""
    levels = np.clip(np.round(np.asarray(samples) * 32768.0), -32768, 32767)
    return (levels / 32768.0).astype(np.float32)
