"""The local worker: a causal LM behind an Anthropic-Messages-compatible HTTP API.

Run it with ``python -m truesight --model smollm2`` (see `truesight.main`). Other packages talk to
it over HTTP only, through the ordinary `anthropic` SDK; nothing here imports them.

Modules: `model` loads a model (`smollm2` fetches the default offline one), `generate` batches
concurrent requests into one `generate` call, `constrain` makes a forced tool call's input follow
the tool's JSON schema (llguidance), `wire` holds the request/response shapes, `prompt`
turns a request into a prompt, `app` builds the FastAPI app around the `routes` (one
`APIRouter` each for health, messages and probes), `main` the worker process (command line,
start, signals), `paths` the layout of its cache folder (`--cache-dir`). `probes`
holds the truesight probes (surprisal, author, followup, linear, tokens) served at /v1/probes;
`train` trains the linear probes (`python -m truesight.train DATASET.jsonl`).
"""
