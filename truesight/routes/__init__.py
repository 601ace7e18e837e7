"""The worker's HTTP routes, one `APIRouter` per thing served: `health` (GET /health), `messages`
(POST /v1/messages, generation) and `probes` (/v1/probes, /v1/probes/{name}, /v1/trained-probes).

Routes reach the model, the batcher and the probes through `state.WorkerDep`, the one
`WorkerState` that `truesight.app.create_app` builds and keeps on `app.state.worker`.
"""
