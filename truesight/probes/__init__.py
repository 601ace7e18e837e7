"""Truesight probes: readouts of what a causal LM reads into a text, served by the worker.

`registry` names the probes (`surprisal`, `author`, `followup`, and `linear` and `tokens` from
`trained`); `runner` validates a request, answers from the result `cache` where it can and computes
the rest with the batched forward passes of `batch`, `prefill` and `activations`. `linear` holds
trained linear probes (fit, save, load), `dataset` the contrast datasets they are trained on (see
`truesight.train`). `wire` holds the HTTP shapes of GET /v1/probes and POST /v1/probes/{name}.
"""
