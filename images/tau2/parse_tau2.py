"""tau2-bench results and episodes, read from the file run_tau2.py has tau2 write (stdlib and orchestrator only).

``<output dir>/tau2_<domain>.json`` is tau2's ``Results``: ``tasks`` (the task documents, as in the package's
tasks.json) and ``simulations``, one episode per (task, trial): ``task_id``, ``trial``, ``termination_reason``
(user_stop, agent_stop, max_steps, too_many_errors, agent_error, user_error, judge_stop), ``messages``,
``reward_info.reward`` and ``skipped`` (the episode failed with an error, e.g. the endpoint after the proxy's retries;
tau2 scores it 0).

The task ``tau2_bench_<domain>`` has, as tau2 computes them (tau2.metrics.agent_metrics):

- ``pass^1``: the mean over tasks of the fraction of trials that succeeded (reward 1), which is the average reward
  when rewards are 0 or 1, as in every domain shipped; stats count/sum/stddev/stderr over tasks (the runtime adds
  the 95% interval from samples.jsonl);
- ``reward``: the average reward over episodes;
- ``pass^k`` for k = 2 .. trials: the mean over tasks of C(successes, k) / C(trials, k).

One sample record per episode: sample = tau2 task (its id and document), repeat = trial, scores ``pass^1`` (1 if it
succeeded) and ``reward``; the prediction is a one-line summary (termination reason, messages count); status
``error`` for a failed episode.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.results import EvaluationResult, MetricResult, Score, ScoreStats, TaskResult
from orchestrator.schema.samples import Message, SampleRecord, sample_id

PASS_1 = "pass^1"
REWARD = "reward"
TOLERANCE = 1e-6
"""tau2's is_successful: a reward within this of 1."""


def _files(output_dir: Path) -> list[Path]:
    found = sorted(p for p in output_dir.glob("tau2_*.json") if not p.name.endswith("_results.json"))
    if not found:
        raise ResultsParseError(f"no tau2 results file (tau2_<domain>.json) under {output_dir}",
                                hint="tau2 wrote none; see logs/harness.log")
    return found


def _load(path: Path) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """(domain, task documents by id, episodes)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        domain = str(data["info"]["environment_info"]["domain_name"])
        tasks = {str(task["id"]): task for task in data["tasks"]}
        episodes = list(data["simulations"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ResultsParseError(f"cannot read tau2 results {path}: {error!r}") from error
    if not all(isinstance(e, dict) and str(e.get("task_id")) in tasks for e in episodes):
        raise ResultsParseError(f"{path}: an episode names no task of the file")
    return domain, tasks, episodes


def _reward(episode: dict[str, Any]) -> float:
    info = episode.get("reward_info")
    reward = info.get("reward") if isinstance(info, dict) else None
    if not isinstance(reward, (int, float)):
        raise ResultsParseError(f"tau2 episode {episode.get('task_id')} trial {episode.get('trial')}: no reward")
    return float(reward)


def _succeeded(reward: float) -> bool:
    return abs(reward - 1.0) <= TOLERANCE


def _task_name(domain: str) -> str:
    return f"tau2_bench_{domain}"


def _mean_score(values: list[float]) -> Score:
    n = len(values)
    mean = math.fsum(values) / n
    stats = ScoreStats(count=n, sum=math.fsum(values), sum_squared=math.fsum(v * v for v in values),
                       min=min(values), max=max(values), mean=mean)
    if n > 1:
        stddev = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        stats = stats.model_copy(update={"stddev": stddev, "stderr": stddev / math.sqrt(n)})
    return Score(value=mean, stats=stats)


def _metric(name: str, score: Score) -> MetricResult:
    return MetricResult(scores={name: score})


def _domain_result(episodes: list[dict[str, Any]]) -> TaskResult:
    by_task: dict[str, list[bool]] = defaultdict(list)
    rewards = []
    for episode in episodes:
        reward = _reward(episode)
        rewards.append(reward)
        by_task[str(episode["task_id"])].append(_succeeded(reward))
    if not rewards:
        raise ResultsParseError("tau2 ran no episode")
    fractions = [sum(done) / len(done) for done in by_task.values()]
    metrics = {PASS_1: _metric(PASS_1, _mean_score(fractions)), REWARD: _metric(REWARD, _mean_score(rewards))}
    max_k = min(len(done) for done in by_task.values())  # as tau2: the fewest trials any task has
    for k in range(2, max_k + 1):
        values = [math.comb(sum(done), k) / math.comb(len(done), k) for done in by_task.values()]
        metrics[f"pass^{k}"] = _metric(f"pass^{k}", Score(value=math.fsum(values) / len(values),
                                                          stats=ScoreStats(count=len(values))))
    return TaskResult(metrics=metrics)


def parse(output_dir: Path) -> EvaluationResult:
    """pass^1, reward and pass^k per domain run."""
    tasks: dict[str, TaskResult] = {}
    for path in _files(output_dir):
        domain, _, episodes = _load(path)
        tasks[_task_name(domain)] = _domain_result(episodes)
    return EvaluationResult(tasks=tasks)


def _input(task: dict[str, Any]) -> list[Message]:
    """What the user simulator was told (the task's scenario): the episode's conversation is in the results file."""
    scenario = task.get("user_scenario")
    return [Message(role="user", content=json.dumps(scenario, ensure_ascii=False, sort_keys=True))]


def _record(domain: str, task: dict[str, Any], episode: dict[str, Any]) -> SampleRecord:
    reward = _reward(episode)
    messages = episode.get("messages") or []
    reason = str(episode.get("termination_reason"))
    failed = bool(episode.get("skipped"))
    summary = {"termination_reason": reason, "messages": len(messages), "reward": reward}
    last = next((m.get("content") for m in reversed(messages) if isinstance(m, dict)
                 and m.get("role") == "assistant" and m.get("content")), None)
    if last is not None:
        summary["last_agent_message"] = last
    criteria = task.get("evaluation_criteria")
    return SampleRecord(
        task=_task_name(domain),
        sample_id=sample_id(str(task["id"]), task),
        repeat=int(episode.get("trial") or 0),
        input=_input(task),
        target=criteria.get("actions") if isinstance(criteria, dict) else None,
        prediction=None if failed else json.dumps(summary, ensure_ascii=False),
        scores={} if failed else {PASS_1: 1.0 if _succeeded(reward) else 0.0, REWARD: reward},
        status="error" if failed else "scored",
        error=f"episode failed ({reason}); see logs/harness.log" if failed else None,
    )


def parse_samples(output_dir: Path) -> list[SampleRecord]:
    """One record per tau2 episode (task x trial)."""
    records: list[SampleRecord] = []
    for path in _files(output_dir):
        domain, tasks, episodes = _load(path)
        records += [_record(domain, tasks[str(e["task_id"])], e) for e in episodes]
    return records
