"""The result of evaluating a model against its non-learned baseline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Evaluation:
    """Metrics for the JSON report, rows (metric, model, baseline) for the printed table."""

    family: str
    baseline: str
    metrics: dict[str, float]
    rows: list[tuple[str, float, float]]
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ServedResult:
    """What `tfstack demo` measured by calling one family's model through the server.

    `rows` fill a printed table with `columns`; `passed` says the served model beat
    its baseline; `report` goes into demo_report.json; `images` are files a person
    would rather look at than read."""

    family: str
    title: str
    columns: list[str]
    rows: list[tuple]
    summary: str
    passed: bool
    report: dict = field(default_factory=dict)
    images: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)
