"""Planner-turn evaluation: does the model produce a schema-valid call, and the right tool?

Questions live in ``evals/data/planning_questions.jsonl`` (50, over the fixture patients), each
with the tool (and record type) a sensible planner calls first. Two figures per run:
schema-valid rate (the protocol's job: parse + validate, after at most one repair) and
right-tool rate (a model-quality figure, not a pass/fail).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from langchain_core.language_models import BaseChatModel

from agent.planning import TurnResult, plan_turn
from agent.models import uses_examples
from agent.protocol.prompting import planner_messages

QUESTIONS = Path(__file__).resolve().parent / "data" / "planning_questions.jsonl"


@dataclass(frozen=True)
class PlanningQuestion:
    id: str
    question: str
    tool: str
    resource_type: str | None = None
    patient: str | None = None
    category: str = ""


def load_questions(path: Path = QUESTIONS) -> list[PlanningQuestion]:
    with open(path) as f:
        return [PlanningQuestion(**json.loads(line)) for line in f if line.strip()]


@dataclass
class TurnScore:
    id: str
    status: str
    valid: bool
    right_tool: bool
    right_type: bool
    repaired: bool
    tool: str | None
    resource_type: str | None
    input_tokens: int
    output_tokens: int
    latency_s: float
    raw_output: str


def score(question: PlanningQuestion, result: TurnResult) -> TurnScore:
    first = result.parsed.calls[0] if result.status == "ok" and result.parsed.calls else None
    tool = first.name if first else ("answer" if result.status == "ok" else None)
    # draft_order names its record type in "kind", search_records in "resource_type"
    rtype = (first.args.get("kind") if first.name == "draft_order" else first.args.get("resource_type")) if first else None
    right_tool = tool == question.tool
    return TurnScore(
        id=question.id, status=result.status, valid=result.status == "ok", right_tool=right_tool,
        right_type=right_tool and (question.resource_type is None or rtype == question.resource_type),
        repaired=result.repaired, tool=tool, resource_type=rtype,
        input_tokens=result.input_tokens, output_tokens=result.output_tokens,
        latency_s=sum(c.latency_s for c in result.calls),
        raw_output=result.calls[-1].raw_output if result.calls else "")


@dataclass
class PlanningReport:
    model: str
    constrained: bool
    turns: list[TurnScore] = field(default_factory=list)
    seconds: float = 0.0

    def rate(self, attr: str) -> float:
        return sum(getattr(t, attr) for t in self.turns) / len(self.turns) if self.turns else 0.0

    @property
    def tokens_per_s(self) -> float:
        out = sum(t.output_tokens for t in self.turns)
        secs = sum(t.latency_s for t in self.turns)
        return out / secs if secs else 0.0

    def summary(self) -> dict[str, Any]:
        n = len(self.turns)
        return {
            "model": self.model, "constrained": self.constrained, "questions": n,
            "schema_valid_rate": round(self.rate("valid"), 3), "right_tool_rate": round(self.rate("right_tool"), 3),
            "right_tool_and_type_rate": round(self.rate("right_type"), 3), "repaired": sum(t.repaired for t in self.turns),
            "statuses": {s: sum(t.status == s for t in self.turns) for s in sorted({t.status for t in self.turns})},
            "mean_input_tokens": round(sum(t.input_tokens for t in self.turns) / n) if n else 0,
            "mean_output_tokens": round(sum(t.output_tokens for t in self.turns) / n) if n else 0,
            "mean_latency_s": round(sum(t.latency_s for t in self.turns) / n, 3) if n else 0,
            "tokens_per_s": round(self.tokens_per_s, 1), "seconds": round(self.seconds, 1),
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "turns": [asdict(t) for t in self.turns]}


def run_planning_eval(model: BaseChatModel, schemas: Sequence[Mapping[str, Any]], questions: Iterable[PlanningQuestion],
                      *, model_label: str = "", constrained: bool = True, thinking: bool = False,
                      examples: str | bool | None = "auto", on_turn=None) -> PlanningReport:
    """One planning turn per question (the first step of an agent run), scored."""
    report = PlanningReport(model_label, constrained and getattr(model, "supports_json_schema", False) and not thinking)
    start = time.perf_counter()
    fewshot = uses_examples(model, examples)
    for q in questions:
        messages = planner_messages(q.question, schemas, thinking=thinking, fewshot=fewshot)
        turn = score(q, plan_turn(model, messages, schemas, constrained=constrained, thinking=thinking))
        report.turns.append(turn)
        if on_turn:
            on_turn(turn)
    report.seconds = time.perf_counter() - start
    return report
