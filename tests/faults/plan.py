"""The fault plan: which request gets which fault on which attempt, decided deterministically.

A plan is a list of scenarios, each a sequence of per-attempt outcomes and the fraction of requests it
applies to. A request's key is a hash of its method, path and canonical JSON body, so every retry of the
same request is the same key, and the N-th arrival of a key is its attempt N. Which scenario a key
falls into is decided by a hash of the seed and the key: the same plan and seed give the same faults in
every run and every process, whatever the arrival order.

The spec language (README.md has examples)::

    PLAN     := SCENARIO ("," SCENARIO)*  |  "none"
    SCENARIO := STEP ("+" STEP)* ["*"] [":" FRACTION]      FRACTION in (0, 1], default 1
    STEP     := "ok" | STATUS (400-599) | "timeout" | "drop" | "reset" | "malformed"

Attempt i of a key in a scenario gets STEP i; attempts after the last step succeed, or, with a trailing
``*``, repeat the last step forever. With ``match``, only requests with that text in one of their body's JSON
strings (a prompt, a message) are faulted, so a test can choose which request fails.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal["ok", "status", "timeout", "drop", "reset", "malformed"]
DEFAULT_PLAN = "429:0.1,500:0.05,502:0.05,503:0.05,timeout:0.05,drop:0.05,reset:0.05,malformed:0.05"


class PlanError(ValueError):
    """A fault plan spec that cannot be parsed; the message says what and where."""


@dataclass(frozen=True)
class Fault:
    """What one attempt gets: a normal answer, an error status, or a broken exchange."""

    kind: FaultKind
    status: int | None = None

    @property
    def label(self) -> str:
        """``ok``, the status code (``429``), or the kind (``timeout``, ``drop``, ``reset``, ``malformed``)."""
        return str(self.status) if self.kind == "status" else self.kind


OK = Fault("ok")
NAMED_STEPS: dict[str, Fault] = {
    "ok": OK,
    "timeout": Fault("timeout"),
    "drop": Fault("drop"),
    "reset": Fault("reset"),
    "malformed": Fault("malformed"),
}


@dataclass(frozen=True)
class Scenario:
    """The outcomes of attempts 1, 2, ... of every key that falls into it."""

    steps: tuple[Fault, ...]
    fraction: float = 1.0
    repeat_last: bool = False

    def fault_for(self, attempt: int) -> Fault:
        """The outcome of attempt ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt}")
        if attempt <= len(self.steps):
            return self.steps[attempt - 1]
        return self.steps[-1] if self.repeat_last else OK

    @property
    def spec(self) -> str:
        """The scenario written back in the spec language."""
        steps = "+".join(step.label for step in self.steps) + ("*" if self.repeat_last else "")
        return f"{steps}:{self.fraction:g}"


@dataclass(frozen=True)
class FaultPlan:
    """Scenarios plus the knobs of the faults themselves.

    ``retry_after`` is the ``Retry-After`` header (seconds) sent with every 429 (None: no header);
    ``delay`` is how long a ``timeout`` attempt holds its answer before sending it (seconds); ``match``, when set,
    limits the faults to requests with that text in a JSON string of their body (:meth:`selects`).
    """

    scenarios: tuple[Scenario, ...] = ()
    seed: int = 0
    retry_after: float | None = 1.0
    delay: float = 10.0
    match: str | None = None

    @classmethod
    def parse(cls, spec: str, *, seed: int = 0, retry_after: float | None = 1.0, delay: float = 10.0,
              match: str | None = None) -> FaultPlan:
        """Parse the spec language (module docstring); raises PlanError naming the bad part."""
        text = spec.strip()
        scenarios: tuple[Scenario, ...] = ()
        if text and text != "none":
            scenarios = tuple(_scenario(part.strip()) for part in text.split(","))
        total = sum(scenario.fraction for scenario in scenarios)
        if total > 1 + 1e-9:
            raise PlanError(f"fault plan {spec!r}: the fractions add up to {total:g}, more than 1")
        if delay < 0 or (retry_after is not None and retry_after < 0):
            raise PlanError("delay and retry_after must not be negative")
        if match == "":
            raise PlanError("match must not be empty (every request would match); leave it out to fault any request")
        return cls(scenarios, seed=seed, retry_after=retry_after, delay=delay, match=match)

    @property
    def spec(self) -> str:
        """The plan written back in the spec language."""
        return ",".join(scenario.spec for scenario in self.scenarios) or "none"

    def selects(self, raw: bytes) -> bool:
        """Whether a request with this body may be faulted: always without ``match``; with it, when one of the
        body's JSON strings (the raw text, if it is not JSON) contains ``match``."""
        if self.match is None:
            return True
        try:
            body: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self.match in raw.decode("utf-8", errors="replace")
        return any(self.match in text for text in _strings(body))

    def scenario_for(self, key: str) -> Scenario | None:
        """The scenario a request key falls into (None: it is never faulted)."""
        point = _unit_interval(f"{self.seed}\0{key}")
        start = 0.0
        for scenario in self.scenarios:
            if start <= point < start + scenario.fraction:
                return scenario
            start += scenario.fraction
        return None

    def fault_for(self, key: str, attempt: int) -> Fault:
        """What attempt ``attempt`` (1-based) of the request with this key gets."""
        scenario = self.scenario_for(key)
        return OK if scenario is None else scenario.fault_for(attempt)


def request_key(method: str, path: str, raw: bytes) -> str:
    """The identity of a request across retries: method, path and body (canonical JSON when it parses)."""
    try:
        body = json.dumps(json.loads(raw.decode("utf-8")), sort_keys=True, separators=(",", ":")).encode("utf-8")
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = raw
    digest = hashlib.sha256(method.upper().encode("ascii") + b" " + path.encode("utf-8") + b"\n" + body)
    return digest.hexdigest()[:32]


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _unit_interval(text: str) -> float:
    """A number in [0, 1) that depends only on ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def _scenario(part: str) -> Scenario:
    steps_text, _, fraction_text = part.partition(":")
    fraction = 1.0
    if fraction_text:
        try:
            fraction = float(fraction_text)
        except ValueError:
            raise PlanError(f"scenario {part!r}: fraction {fraction_text!r} is not a number") from None
        if not 0 < fraction <= 1:
            raise PlanError(f"scenario {part!r}: the fraction must be in (0, 1], got {fraction_text}")
    repeat = steps_text.endswith("*")
    steps_text = steps_text.removesuffix("*")
    if not steps_text:
        raise PlanError(f"scenario {part!r} has no steps; write e.g. '429' or '500+drop:0.1'")
    return Scenario(tuple(_step(step.strip(), part) for step in steps_text.split("+")), fraction, repeat)


def _step(step: str, part: str) -> Fault:
    named = NAMED_STEPS.get(step)
    if named is not None:
        return named
    if step.isdigit() and 400 <= int(step) <= 599:
        return Fault("status", int(step))
    named_faults = ", ".join(list(NAMED_STEPS)[1:])
    raise PlanError(f"scenario {part!r}: unknown step {step!r}; use ok, a status from 400 to 599, {named_faults}")
