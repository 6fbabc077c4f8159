"""Fine-tuning and distillation runs: Keras `fit` on endless batches with a progress bar."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def fit(
    model: keras.Model,
    batches: tf.data.Dataset,
    steps: int,
    learning_rate: float,
    description: str,
    loss: keras.losses.Loss | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    progress: bool = True,
) -> list[float]:
    """Adam with cosine decay to zero over `steps`; returns Keras' running mean of the
    loss after each step (the last one is the run's mean).

    `loss=None` keeps a model's own `train_step` loss (the Distiller's)."""
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    recorder = _LossRecorder()
    with _progress(progress) as bar:
        bar_callback = _ProgressCallback(bar, bar.add_task(description, total=steps, loss=0.0))
        model.fit(
            batches,
            epochs=1,
            steps_per_epoch=steps,
            verbose=0,
            callbacks=[*callbacks, recorder, bar_callback],
        )
    return recorder.losses


class _LossRecorder(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.losses.append(float((logs or {}).get("loss", float("nan"))))


class _ProgressCallback(keras.callbacks.Callback):
    def __init__(self, bar: Progress, task) -> None:
        super().__init__()
        self._bar, self._task = bar, task

    def on_train_batch_end(self, batch, logs=None) -> None:
        self._bar.update(self._task, completed=batch + 1, loss=(logs or {}).get("loss", 0.0))


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.5f}"),
        TimeRemainingColumn(),
        disable=not enabled,
    )
