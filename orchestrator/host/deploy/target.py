"""Every task of a run that deploys a server is pointed at it: its URL, its model name, the endpoint type.

The URL is the server's on this machine (``http://127.0.0.1:<port>``) and its route by the task's endpoint type:
the one a layer gives (``--model_type``, the run config, the framework's defaults), else the first the task
supports. An endpoint the user names alongside a deployment is bad input: the run evaluates the server it starts.
"""

from __future__ import annotations

from dataclasses import replace

from orchestrator.host.catalog import HarnessImage
from orchestrator.schema.config import EndpointType
from orchestrator.schema.deployment import Deployment
from orchestrator.schema.errors import InputError
from orchestrator.schema.merge import merge
from orchestrator.schema.resolve import RunRequest, request_layers, requested_task

ROUTES: dict[EndpointType, str] = {"chat": "/v1/chat/completions", "vlm": "/v1/chat/completions",
                                   "completions": "/v1/completions"}
"""The OpenAI-compatible route of each endpoint type, on every server type."""


def point_at_server(request: RunRequest, image: HarnessImage, deployment: Deployment) -> RunRequest:
    """``request`` with the deployed server as its endpoint (url, model id, type)."""
    layers = request_layers(request)
    for layer in layers:
        endpoint = layer.target.api_endpoint if layer.target else None
        if endpoint is not None and endpoint.url:
            raise InputError(f"the run deploys a {deployment.type} server, and also names the endpoint {endpoint.url}",
                             hint="drop --model_url (and target.api_endpoint.url): the tasks evaluate the server")
        if endpoint is not None and endpoint.model_id and endpoint.model_id != deployment.served_model_name:
            raise InputError(f"--model_id {endpoint.model_id} is not the deployed server's model name "
                             f"({deployment.served_model_name})",
                             hint="drop --model_id, or set deployment.served_model_name")
    eval_type = requested_task(layers)
    if eval_type is None:  # resolving says what is missing
        return request
    task = image.framework.find_task(eval_type)
    merged = merge(image.framework.defaults, task.defaults, *layers)
    endpoint_type = merged.target.api_endpoint.type if merged.target and merged.target.api_endpoint else None
    if endpoint_type is None:
        supported = (merged.config.supported_endpoint_types if merged.config else None) or ["chat"]
        endpoint_type = supported[0]
    url = f"http://127.0.0.1:{deployment.port}{ROUTES[endpoint_type]}"
    return replace(request, model_url=url, model_id=deployment.served_model_name, model_type=endpoint_type)
