"""The adapter proxy: a local asynchronous HTTP proxy between a harness and the endpoint.

run_eval starts it on a free loopback port for the duration of a run and points the harness at
it. Requests to the endpoint's path pass an interceptor chain (caching, retries, logging,
request/response adjustments, statistics); other paths (tokenizer routes, /v1/models) are
forwarded as they are.
"""
