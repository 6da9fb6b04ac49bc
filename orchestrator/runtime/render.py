"""Rendering a framework's command template: once, strictly, shell-safely.

Templates see ``config``, ``target``, ``framework_name`` and ``pkg_name`` of the resolved
run, and ``client``: the attempts and timeout the harness's own HTTP client is to use
(:mod:`orchestrator.runtime.retries`: one attempt when the adapter proxy retries), and
``clients``: the same for each auxiliary endpoint with a proxy of its own, by role (``clients.judge``). Values
reach the shell only through ``| shq``, and JSON/YAML files only through ``| json``;
``fail("...")`` stops rendering with a message for the user.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from typing import Any

import jinja2

from orchestrator.runtime.retries import ClientSettings, auxiliary_clients, client_settings
from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import ConfigError, InputError
from orchestrator.schema.sanity import check_command


class TemplateFailedError(InputError):
    """The template called ``fail(...)``: the resolved config cannot run as it is."""


def _shq(value: Any) -> str:
    """Quote one value for a POSIX shell."""
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, jinja2.Undefined):
        raise ConfigError("a template value passed to shq is missing", where="framework.yml command")
    return shlex.quote(str(value))


def _json(value: Any, indent: int | None = None) -> str:
    """Encode a value for a JSON (or YAML) file; strings never contain a raw newline."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _compact(value: dict[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None (so optional settings can be left out of a config file)."""
    return {key: item for key, item in value.items() if item is not None}


def _fail(message: str) -> None:
    raise TemplateFailedError(message)


def make_environment() -> jinja2.Environment:
    """The one Jinja environment every command template is rendered in."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["shq"] = _shq
    env.filters["json"] = _json
    env.filters["compact"] = _compact
    env.globals["fail"] = _fail
    return env


def template_context(evaluation: Evaluation, clients: dict[str, ClientSettings] | None = None) -> dict[str, Any]:
    """What a template sees. ``api_key_name`` mirrors ``api_key`` for NeMo-style templates. ``clients``: the
    auxiliary endpoints' (default: from ``evaluation``, which must then hold their own URLs, not a proxy's)."""
    data = evaluation.model_dump(mode="json")
    endpoint = data["target"]["api_endpoint"]
    endpoint["api_key_name"] = endpoint["api_key"]
    data["client"] = dataclasses.asdict(client_settings(evaluation))
    if clients is None:
        clients = auxiliary_clients(evaluation)
    data["clients"] = {role: dataclasses.asdict(settings) for role, settings in clients.items()}
    return data


def render_command(evaluation: Evaluation, *, source: str = "framework.yml", data: bool = False,
                   clients: dict[str, ClientSettings] | None = None) -> str:
    """Render ``evaluation.command`` (``data_command`` with ``data=True``) once; template errors become a
    ConfigError naming the template. ``clients``: see :func:`template_context` (the harness's view of a run, with
    its proxies' URLs, passes those of the run as resolved)."""
    env = make_environment()
    name = "data_command" if data else "command"
    try:
        template = env.from_string(evaluation.data_command or "" if data else evaluation.command)
        rendered = template.render(template_context(evaluation, clients))
    except TemplateFailedError:
        raise
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"{name} template syntax error: {err.message}",
                          where=f"{source} ({name} line {err.lineno})") from None
    except jinja2.UndefinedError as err:
        raise ConfigError(f"{name} template uses an undefined value: {err.message}", where=source,
                          hint="set it in the config or guard it in the template") from None
    rendered = rendered.strip()
    check_command(rendered, what=name)
    return rendered
