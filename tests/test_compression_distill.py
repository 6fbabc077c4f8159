"""Distillation: a student taught by the trained model beats the same student alone."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from compression.adapter import load_adapter
from compression.candidate import Candidate
from compression.distill import Distiller, DistillStage
from compression.stage import StageContext

STUDENT = {"filters": (16, 16)}  # the tiny teacher has 32 + 32 filters


@pytest.fixture(scope="module")
def adapter(superres_workdir):
    return load_adapter("superres", superres_workdir)


def train_student(adapter, **weights) -> float:
    """Held-out PSNR of the student after 200 steps (same seed, init and batches)."""
    teacher = adapter.load_model()
    stage = DistillStage(student=STUDENT, steps=200, batch_size=4, **weights)
    student = stage.apply(Candidate(teacher), StageContext(adapter, teacher, progress=False))
    assert student.model.count_params() < teacher.count_params() / 2
    return adapter.evaluate(student.predictor(adapter.tflite_signature))


def test_a_distilled_student_beats_the_same_student_trained_without_a_teacher(adapter):
    alone = train_student(adapter, hard_weight=1.0, soft_weight=0.0)
    taught = train_student(adapter, hard_weight=0.0, soft_weight=1.0)  # teacher's outputs

    _, bicubic = adapter.baseline_metric()
    assert bicubic < alone < taught


def test_layerwise_imitation_pairs_layers_at_the_same_relative_depth(adapter):
    teacher = adapter.load_model()
    deeper = adapter.build_student(teacher, filters=(32, 32, 32, 32), kernel_sizes=(3, 3, 3, 3))
    thinner = adapter.build_student(teacher, filters=(8,), kernel_sizes=(5,))

    assert adapter.imitation_pairs(thinner, teacher) == [("feature_0", "feature_1")]
    assert adapter.imitation_pairs(deeper, teacher) == [
        ("feature_0", "feature_0"),
        ("feature_1", "feature_0"),
        ("feature_2", "feature_1"),
        ("feature_3", "feature_1"),
    ]


def test_the_imitation_phase_teaches_the_students_layers_the_teachers_features(adapter):
    teacher = adapter.load_model()
    context = StageContext(adapter, teacher, progress=False)
    keras.utils.set_random_seed(0)
    student = adapter.build_student(teacher, filters=(8, 8))
    pairs = adapter.imitation_pairs(student, teacher)
    distiller = Distiller(
        student,
        teacher,
        adapter.loss(),
        hard_weight=0,
        soft_weight=0,
        imitation_weight=1,
        imitation_pairs=pairs,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    batches = adapter.train_batches(batch_size=4, seed=context.seed)

    history = distiller.fit(batches, epochs=2, steps_per_epoch=25, verbose=0).history

    assert history["imitation"][-1] < 0.5 * history["imitation"][0]
    assert history["hard"][-1] > 0  # reported, not trained on


def test_classification_soft_loss_is_temperature_scaled_kl_divergence():
    inputs = keras.Input([4])
    teacher = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    student = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    distiller = Distiller(
        student,
        teacher,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        task="classification",
        temperature=4.0,
    )
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(5, 3)) * 3, rng.normal(size=(5, 3)) * 3

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(t / 4.0), softmax(s / 4.0)
    expected = np.mean(np.sum(p * np.log(p / q), axis=1)) * 16.0
    loss = distiller.soft_loss(tf.constant(t, tf.float32), tf.constant(s, tf.float32))
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    assert float(distiller.soft_loss(tf.constant(t, tf.float32), tf.constant(t, tf.float32))) == (
        pytest.approx(0.0, abs=1e-6)
    )


def test_a_distiller_refuses_a_bad_task_or_temperature(adapter):
    teacher = adapter.load_model()
    with pytest.raises(ValueError, match="task"):
        Distiller(teacher, teacher, adapter.loss(), task="ranking")
    with pytest.raises(ValueError, match="temperature"):
        Distiller(teacher, teacher, adapter.loss(), task="classification", temperature=0)
