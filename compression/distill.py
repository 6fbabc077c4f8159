"""Knowledge distillation into a smaller student: a `Distiller` with its own `train_step`.

The student learns from a frozen teacher (the previous stage's model) with three terms:

- hard: the task loss against the real targets;
- soft: for classification, KL divergence between temperature-softened teacher and
  student distributions, times T^2 (Hinton et al. 2015; word-level KD for sequences);
  for regression, the squared distance to the teacher's outputs, which are the soft
  targets;
- imitation: "Go Wide, Then Narrow" (Zhou et al., 2020) layerwise imitation: each paired
  student layer, through a learned linear projection to the teacher's width, regresses
  the wide teacher's layer output.

`DistillStage` runs the imitation phase first (imitation only), then trains on hard and
soft targets, as the paper does before its final whole-network distillation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import tensorflow as tf
import tf_keras as keras

from compression import training
from compression.candidate import Candidate
from compression.stage import Stage, StageContext, require

TASKS = ("classification", "regression")


class Distiller(keras.Model):
    """Trains `student` against a frozen `teacher`; calling it runs the student.

    Classification models must output logits (the softmax, or a sigmoid for one output
    unit, is applied here after dividing by `temperature`).
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        task_loss: keras.losses.Loss,
        task: str = "regression",
        temperature: float = 1.0,
        hard_weight: float = 0.5,
        soft_weight: float = 0.5,
        imitation_weight: float = 0.0,
        imitation_pairs: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")
        if temperature <= 0:
            raise ValueError(f"`temperature` must be positive. Received: temperature={temperature}")
        self.student = student
        self.teacher = teacher
        self.task_loss = task_loss
        self.task = task
        self.temperature = temperature
        self.weights_by_term = {
            "hard": hard_weight,
            "soft": soft_weight,
            "imitation": imitation_weight if imitation_pairs else 0.0,
        }
        pairs = list(imitation_pairs) if imitation_weight else []
        self._student_outputs = keras.Model(
            student.inputs, [student.output, *(student.get_layer(s).output for s, _ in pairs)]
        )
        self._teacher_outputs = keras.Model(
            teacher.inputs, [teacher.output, *(teacher.get_layer(t).output for _, t in pairs)]
        )
        self.projections = []
        for student_layer, teacher_layer in pairs:
            projection = keras.layers.Dense(
                teacher.get_layer(teacher_layer).output.shape[-1], name=f"to_{teacher_layer}"
            )
            projection.build(student.get_layer(student_layer).output.shape)
            self.projections.append(projection)

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def train_step(self, data):
        inputs, targets = data
        teacher_output, *teacher_features = tf.nest.flatten(
            self._teacher_outputs(inputs, training=False)
        )
        variables = self.student.trainable_variables + [
            v for projection in self.projections for v in projection.trainable_variables
        ]
        with tf.GradientTape() as tape:
            student_output, *student_features = tf.nest.flatten(
                self._student_outputs(inputs, training=True)
            )
            terms = {
                "hard": self.task_loss(targets, student_output),
                "soft": self.soft_loss(teacher_output, student_output),
                "imitation": self.imitation_loss(teacher_features, student_features),
            }
            loss = tf.add_n([self.weights_by_term[k] * term for k, term in terms.items()])
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(
            (g, v) for g, v in zip(gradients, variables, strict=True) if g is not None
        )
        return {"loss": loss, **terms}

    def soft_loss(self, teacher_output: tf.Tensor, student_output: tf.Tensor) -> tf.Tensor:
        if self.task == "regression":
            return tf.reduce_mean(tf.square(tf.stop_gradient(teacher_output) - student_output))
        t = self.temperature
        if teacher_output.shape[-1] == 1:  # binary: one logit
            soft_targets = tf.sigmoid(teacher_output / t)
            divergence = keras.losses.binary_crossentropy(
                soft_targets, student_output / t, from_logits=True
            ) - keras.losses.binary_crossentropy(soft_targets, teacher_output / t, from_logits=True)
        else:
            divergence = keras.losses.kl_divergence(
                tf.nn.softmax(teacher_output / t), tf.nn.softmax(student_output / t)
            )
        return tf.reduce_mean(divergence) * t * t

    def imitation_loss(self, teacher_features, student_features) -> tf.Tensor:
        if not self.projections:
            return tf.constant(0.0)
        errors = [
            tf.reduce_mean(tf.square(tf.stop_gradient(teacher) - projection(student)))
            for projection, teacher, student in zip(
                self.projections, teacher_features, student_features, strict=True
            )
        ]
        return tf.add_n(errors) / len(errors)


@dataclass(frozen=True)
class DistillStage(Stage):
    """Train a configurable student from the incoming model (the teacher).

    `hard_weight: 1, soft_weight: 0, imitation_steps: 0` trains the same student without
    a teacher: the control a distillation result is compared with."""

    kind = "distill"

    student: dict = field(default_factory=dict)  # the adapter's build_student arguments
    steps: int = 2000
    learning_rate: float = 1e-3
    batch_size: int | None = None
    temperature: float = 2.0  # classification only
    hard_weight: float = 0.5
    soft_weight: float = 0.5
    imitation_steps: int = 0  # "Go Wide, Then Narrow" layerwise phase before the rest
    imitation_learning_rate: float = 1e-3

    def __post_init__(self):
        require(self.steps >= 1, f"`steps` must be positive. Received: steps={self.steps}")
        require(
            self.imitation_steps >= 0,
            f"`imitation_steps` must be >= 0. Received: imitation_steps={self.imitation_steps}",
        )
        require(
            self.hard_weight >= 0
            and self.soft_weight >= 0
            and self.hard_weight + self.soft_weight > 0,
            "`hard_weight` and `soft_weight` must be >= 0, not both 0. "
            f"Received: hard_weight={self.hard_weight}, soft_weight={self.soft_weight}",
        )

    def apply(self, candidate: Candidate, context: StageContext) -> Candidate:
        adapter, teacher = context.adapter, candidate.model
        keras.utils.set_random_seed(context.seed)
        student = adapter.build_student(teacher, **self.student)
        batches = adapter.distillation_batches(teacher, self.batch_size, seed=context.seed + 20)
        details = {"student": self.student, "teacher_parameters": teacher.count_params()}
        if self.imitation_steps:
            pairs = adapter.imitation_pairs(student, teacher)
            imitation = self._distiller(student, teacher, context, (0.0, 0.0, 1.0), pairs)
            losses = training.fit(
                imitation,
                batches,
                self.imitation_steps,
                self.imitation_learning_rate,
                "distill: layerwise imitation",
                progress=context.progress,
            )
            details.update(imitation_pairs=pairs, imitation_mean_loss=losses[-1])
        weights = (self.hard_weight, self.soft_weight, 0.0)
        distiller = self._distiller(student, teacher, context, weights, ())
        losses = training.fit(
            distiller,
            batches,
            self.steps,
            self.learning_rate,
            "distill: student",
            progress=context.progress,
        )
        details["mean_loss"] = losses[-1]
        return Candidate(student, details=details)

    def _distiller(self, student, teacher, context, weights, pairs) -> Distiller:
        hard, soft, imitation = weights
        return Distiller(
            student,
            teacher,
            context.adapter.loss(),
            task=context.adapter.task,
            temperature=self.temperature,
            hard_weight=hard,
            soft_weight=soft,
            imitation_weight=imitation,
            imitation_pairs=pairs,
        )
