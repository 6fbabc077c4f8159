"""speech for the compression pipeline: WER on held-out voices, narrower recognisers as students.

The compressed network is the recogniser itself (normalised log-mel features and each
row's frame count in, CTC logits out); feature extraction and decoding stay in the
serving graph around it. Two things adapt the family to the stages:

- targets are packed into one int32 tensor per row (label length, logit steps,
  labels), so CTC, which needs both lengths, is an ordinary Keras loss for fine-tuning
  and for the Distiller's hard term; the soft term is frame-level KD on the logits;
- TFMOT's registry prunes GRU/LSTM layers but not the `Bidirectional` wrapper around
  them: `PrunableBidirectional` is the same layer naming both directions' kernels and
  recurrent kernels as its prunable weights (`load_model` swaps it in, weights kept).

No TFLite: the converter cannot lower the masked GRUs' TensorList ops to builtin ops
(their element shapes are not static, even at batch 1), and LiteRT has no Flex
delegate. So `quantize`/`qat` do not apply; releases are SavedModels (distilled and/or
pruned), and size is measured on the float32 weights, raw and gzip-compressed.
"""

from __future__ import annotations

from collections.abc import Mapping

import jiwer
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from compression.adapter import FamilyAdapter, Predict
from models.speech import data as sp_data
from models.speech import evaluate as sp_evaluate
from models.speech import family as sp_family
from models.speech import noise as sp_noise
from models.speech import train as sp_train
from models.speech.decode import greedy_decode
from models.speech.features import waveform_features
from models.speech.model import FrameMask, PadTime, ZeroMasked, build_recognizer, output_frames
from models.speech.signatures import SpeechRecognitionModule

EVALUATION_BATCH = 32


@keras.saving.register_keras_serializable(package="tfstack_compression")
class PrunableBidirectional(keras.layers.Bidirectional, tfmot.sparsity.keras.PrunableLayer):
    """`Bidirectional` whose recurrent weights TFMOT may prune (one class for See et al.)."""

    def get_prunable_weights(self) -> list[tf.Variable]:
        return [
            getattr(direction.cell, name)
            for direction in (self.forward_layer, self.backward_layer)
            for name in ("kernel", "recurrent_kernel")
        ]


class CTCLoss(keras.losses.Loss):
    """Mean CTC loss on packed targets: int32 [B, 2 + L] = (label length, logit steps,
    labels padded to L); blank is the last class, as the family trains."""

    def __init__(self, name: str = "ctc", **kwargs) -> None:
        super().__init__(name=name, **kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # The logits carry the frames' Keras mask, which Keras would apply to the
        # per-utterance losses as if they were per frame; CTC uses the lengths instead.
        return super().__call__(y_true, tf.identity(y_pred), sample_weight)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        packed = tf.cast(y_true, tf.int32)
        return tf.nn.ctc_loss(
            packed[:, 2:],
            y_pred,
            packed[:, 0],
            packed[:, 1],
            logits_time_major=False,
            blank_index=-1,
        )


def pack_targets(labels: tf.Tensor, label_lengths: tf.Tensor, frames: tf.Tensor) -> tf.Tensor:
    """`CTCLoss`'s packed targets for one batch."""
    lengths = tf.stack([label_lengths, output_frames(frames)], axis=1)
    return tf.concat([tf.cast(lengths, tf.int32), tf.cast(labels, tf.int32)], axis=1)


class Adapter(FamilyAdapter):
    name = "speech"
    metric = "WER (held-out voices)"
    higher_is_better = False
    task = "classification"  # per-frame logits: word-level (frame-level) KD
    prunable_layers = (keras.layers.Conv2D, keras.layers.Dense, PrunableBidirectional)
    # The held-out conditions `evaluate` scores (the family's whole test set by default).
    evaluation_conditions: tuple[str, ...] = sp_evaluate.CONDITIONS

    def __init__(self, workdir) -> None:
        super().__init__(workdir)
        self._config: sp_train.TrainConfig | None = None
        self._heldout: list[tuple[dict[str, np.ndarray], list[str]]] | None = None
        self._waveforms: list[np.ndarray] | None = None

    @property
    def config(self) -> sp_train.TrainConfig:
        if self._config is None:
            self.load_model()
        return self._config

    def load_model(self) -> keras.Model:
        model, self._config = sp_train.load_trained(self.workdir)
        return prunable(model)

    def train_batches(self, batch_size: int | None = None, seed: int = 0) -> tf.data.Dataset:
        if self._waveforms is None:
            self._waveforms = sp_data.load_waveforms(
                self._items(), sp_data.default_cache_dir(), progress=False
            )
        batches = sp_data.training_batches(
            self._waveforms,
            [item.text for item in self._items()],
            sp_noise.load_noise(sp_data.default_cache_dir(), "train"),
            batch_size or self.config.batch_size,
            sp_data.NoiseConditions(self.config.clean_fraction, self.config.snr_range),
            seed,
        )
        return batches.map(
            lambda inputs, targets: (
                {"features": inputs[0], "frames": inputs[1]},
                pack_targets(*targets, inputs[1]),
            )
        )

    def loss(self) -> keras.losses.Loss:
        return CTCLoss()

    def evaluate(self, predict: Predict) -> float:
        """Corpus WER of greedy CTC transcripts on the family's test set: every held-out
        voice, seen and unseen sentences, in each of `evaluation_conditions`."""
        references, hypotheses = [], []
        for inputs, texts in self._heldout_batches():
            logits = predict(inputs)
            steps = output_frames(inputs["frames"])
            hypotheses += [t.decode() for t in greedy_decode(logits, steps).numpy()]
            references += texts
        return float(jiwer.wer(references, hypotheses))

    def baseline_metric(self) -> tuple[str, float]:
        answer = sp_evaluate.most_frequent(sp_train.training_transcripts(self.workdir))
        references = [text for _, texts in self._heldout_batches() for text in texts]
        return "most frequent transcript", float(jiwer.wer(references, [answer] * len(references)))

    def latency_inputs(self, batch_size: int) -> dict[str, np.ndarray]:
        """`batch_size` held-out utterances (clean, the first voices' sentences)."""
        tests = [t for t in self._tests() if t.condition == "clean"][:batch_size]
        return _features([t.waveform for t in tests])

    def model_bytes(self, model: keras.Model) -> bytes:
        """The float32 weights, concatenated (no TFLite form: see the module docstring)."""
        return b"".join(np.asarray(w, np.float32).tobytes() for w in model.get_weights())

    def custom_objects(self) -> Mapping[str, type]:
        return {
            "PrunableBidirectional": PrunableBidirectional,
            "PadTime": PadTime,
            "FrameMask": FrameMask,
            "ZeroMasked": ZeroMasked,
        }

    def build_student(
        self,
        teacher: keras.Model,
        rnn_units: int = 64,
        rnn_layers: int | None = None,
        conv_filters: tuple[int, int] | None = None,
    ) -> keras.Model:
        """The family's recogniser, narrower (`rnn_units`) and optionally shallower."""
        config = self.config
        return prunable(
            build_recognizer(
                tuple(conv_filters or config.conv_filters),
                rnn_units,
                rnn_layers or config.rnn_layers,
                config.dropout,
            )
        )

    def imitation_pairs(self, student: keras.Model, teacher: keras.Model) -> list[tuple[str, str]]:
        """The last recurrent layer of each (what the output layer reads)."""
        return [(_recurrent_layers(student)[-1], _recurrent_layers(teacher)[-1])]

    def tflite_module(self, model: keras.Model) -> tf.Module:
        raise ValueError(
            "speech has no builtin-ops TFLite form (the masked GRUs need TensorList ops); "
            "compress it with `distill` and `prune` stages, released as a SavedModel"
        )

    def serving_module(self, model: keras.Model) -> tuple[tf.Module, dict]:
        module = SpeechRecognitionModule(model)
        return module, module.signatures()

    def warmup_inputs(self, tflite: bool) -> tuple[str, dict]:
        return "serving_default", sp_family.warmup_inputs()

    def _items(self) -> list[sp_data.Utterance]:
        return sp_train.training_utterances(self.config)

    def _tests(self) -> list[sp_evaluate.TestUtterance]:
        tests = sp_evaluate.test_set(progress=False)
        return [test for test in tests if test.condition in self.evaluation_conditions]

    def _heldout_batches(self) -> list[tuple[dict[str, np.ndarray], list[str]]]:
        """The test set as feature batches of similar lengths, computed once."""
        if self._heldout is None:
            tests = self._tests()
            order = np.argsort([len(t.waveform) for t in tests], kind="stable")
            self._heldout = []
            for start in range(0, len(order), EVALUATION_BATCH):
                rows = [tests[i] for i in order[start : start + EVALUATION_BATCH]]
                inputs = _features([t.waveform for t in rows])
                self._heldout.append((inputs, [t.reference for t in rows]))
        return self._heldout


def prunable(model: keras.Model) -> keras.Model:
    """A copy of `model` (same weights) with `PrunableBidirectional` for `Bidirectional`."""

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if type(layer) is keras.layers.Bidirectional:
            return PrunableBidirectional.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=swap)
    clone.set_weights(model.get_weights())
    return clone


def _features(waveforms: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The model's inputs for padded waveforms, as the serving graph computes them."""
    lengths = np.array([len(w) for w in waveforms], np.int32)
    padded = np.zeros((len(waveforms), lengths.max()), np.float32)
    for row, waveform in enumerate(waveforms):
        padded[row, : len(waveform)] = waveform
    features, frames = waveform_features(tf.constant(padded), tf.constant(lengths))
    return {"features": features.numpy(), "frames": frames.numpy()}


def _recurrent_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
