"""The stage interface: a frozen dataclass of parameters (from YAML) with one `apply`."""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import tf_keras as keras

from compression.adapter import FamilyAdapter
from compression.candidate import Candidate


@dataclass(frozen=True)
class StageContext:
    """What every stage may use besides its input candidate."""

    adapter: FamilyAdapter
    teacher: keras.Model  # the trained, uncompressed model
    progress: bool = True
    seed: int = 0


@dataclass(frozen=True)
class Stage(abc.ABC):
    """One compression step. Subclasses are frozen dataclasses whose fields are the
    stage's YAML parameters; they validate them in `__post_init__`."""

    kind: ClassVar[str]  # the `stage:` value in a config
    produces_tflite: ClassVar[bool] = False  # then no stage may follow it

    @abc.abstractmethod
    def apply(self, candidate: Candidate, context: StageContext) -> Candidate:
        """The compressed candidate; `candidate` is a Keras one (the previous stage's)."""

    def spec(self) -> dict:
        """The stage as configured: its cache key and its entry in the report."""
        return {"stage": self.kind, **dataclasses.asdict(self)}


def require(condition: bool, message: str) -> None:
    """Parameter validation in the house style: ValueError naming what was received."""
    if not condition:
        raise ValueError(message)
