"""The inference Lambda: POST /infer/hate-speech (one text) and POST /infer/hate-speech/batch (1 to
100 texts) behind an API Gateway REST API (proxy integration).

Handler `infer.app.lambda_handler`. HTTP, logging and metrics are Powertools'; the routes
only read the request (infer.request) and ask the model service (infer.service), and every answer,
success or error, leaves through `_reply` (a batch's 200 through classify_batch's own records),
which writes the one log record and the metrics of the request. Errors are exceptions mapped to
answers by the resolver's exception handlers.

A prediction is also scored, after the served answer, by every other model the package ships (the
shadow, for the canary judge's label pairs); its time is logged apart (shadow_ms) and left out of
latency_ms. Each record says who sent the request (source: live, probe or hook, from API
Gateway's request id, see infer.sources); only live requests publish the business metrics.
The probe's and the hook's answers also carry the logged latency_ms in the X-Handler-Latency-Ms
header (the hook's latency reference, canary/hook.py); consumers' answers never do.

The judge counts texts, so a batch writes one record per text, in the single route's shape plus
batch_index, batch_size and batch_latency_ms (the whole request's); each text's latency_ms is its
share of the request's (batch_latency_ms / batch_size), so a request's records add up to it. A
refused batch writes one record, as a refused single request does. Metrics: Prediction counts
texts (per label) on both routes; InferenceLatency times single requests; BatchLatency and
BatchTexts time and size batch requests (their sample counts are the batch requests).

No tracing SDK (issue 11): Lambda's active tracing (template.yaml) already records each
invocation's function segment, init and invocation timed apart, and this function calls
no other service, so Powertools' Tracer only added a handler subsegment and a ColdStart annotation
(the ColdStart metric and the logs' cold_start key say the same). Importing it cost the X-Ray SDK
(in maintenance since February 2026) at every cold start: ~16 ms of a ~120 ms init in the Lambda
environment, and ~0.25 s with botocore's setup wherever LAMBDA_TASK_ROOT is unset (unit tests,
`python -X importtime -c "import infer.app"`). tests/unit/test_cold_import.py keeps it out;
BENCHMARKS.md has the before and after.
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections import Counter
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.api_gateway import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit

from infer.request import BATCH_EXAMPLE, EXAMPLE, RequestError, read_text, read_texts
from infer.service import ModelService, ModelUnavailable
from infer.sources import LIVE, RequestSource, source_of_event

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.exceptions import NotFoundError
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

ROUTE = "/infer/hate-speech"
BATCH_ROUTE = ROUTE + "/batch"
REQUEST_LOG_MESSAGE = "inference"
LATENCY_HEADER = "X-Handler-Latency-Ms"  # latency_ms of the served path: probe and hook answers only
INTERNAL_ERROR = {"issue": "Internal server error"}
# Static CORS headers on every answer, errors included: the API is gated by its key, not by origin.
# Powertools' CORSConfig only adds them when the request carries an Origin header and answers a
# preflight with 204 and no body; this API answers OPTIONS with 200 and a JSON body, like every route.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type,X-Api-Key",
    "Access-Control-Allow-Methods": "OPTIONS,POST",
}


class RequestLogFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON log format, except that the per-request record always has all its keys:
    Powertools drops keys whose value is None, and readers of the record expect "label": null."""

    _NULLABLE = ("model_version", "function_version", "label", "text_chars", "probe_id", "shadow_ms")

    def serialize(self, log: dict[str, Any]) -> str:
        if log.get("message") == REQUEST_LOG_MESSAGE:
            log = {**log, **{key: None for key in self._NULLABLE if key not in log}}
        return super().serialize(log)


# Init, once per execution environment: settings, then the verified model (or the reason there is none).
SERVICE = ModelService.start()
CONFIG = SERVICE.config

logger = Logger(service=CONFIG.service_name, level=CONFIG.log_level, logger_formatter=RequestLogFormatter())
# Powertools adds the dimension "service" (POWERTOOLS_SERVICE_NAME) to every metric; the dashboard's
# SEARCH expressions filter on it.
metrics = Metrics(namespace=CONFIG.metrics_namespace, service=CONFIG.service_name)
# debug=False whatever POWERTOOLS_EVENT_HANDLER_DEBUG says: debug mode prints events (text, API key)
# and puts stack traces in 500 bodies.
app = APIGatewayRestResolver(debug=False)
# Error answers publish no metrics by design; Powertools would warn about that on every one of them.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

if SERVICE.failure:
    logger.error("model not loaded: every request will answer 500", extra={"reason": SERVICE.failure})
# Once per environment: a shadow model that failed to load only leaves its label out of the records.
for _shadow, _why in SERVICE.shadow_failures:
    logger.warning("shadow model not loaded: no label of it", extra={"shadow_model": _shadow, "reason": _why})


def _start_request(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    """Start the request's clock; refuse every request of an environment without a model."""
    app.append_context(started=time.perf_counter())
    SERVICE.check()
    return next_middleware(app)


app.use(middlewares=[_start_request])


def _reply(
    status: int,
    body: dict[str, Any],
    *,
    label: str | None = None,
    text_chars: int | None = None,
    headers: dict[str, str] | None = None,
    shadow: dict[str, str] | None = None,
    shadow_ms: float | None = None,
) -> Response:
    """The answer to the current request, with its log record and, for a user's prediction, its
    metrics. `shadow_ms`, the time shadow scoring took, is left out of latency_ms."""
    latency_ms = _served_latency_ms(shadow_ms or 0.0)
    version = SERVICE.version
    origin = source_of_event(app.current_event.raw_event)
    _log_request(origin, int(status), label, latency_ms, text_chars, shadow, shadow_ms)
    # The probe's and the hook's requests are not users': the business metrics count consumers only.
    if label is not None and version is not None and origin.source == LIVE:
        _label_dimensions(version, label)
        metrics.add_metric(name="InferenceLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
        metrics.add_metric(name="Prediction", unit=MetricUnit.Count, value=1)
    return _response(status, body, origin, latency_ms, headers)


def _label_dimensions(version: str, label: str) -> None:
    """The next EMF record's two dimension sets, for the prediction metrics of the single and the
    batch route alike: [ModelVersion, service] and [ModelVersion, Label, service]."""
    metrics.add_dimension(name="ModelVersion", value=version)
    metrics.add_dimensions(ModelVersion=version, Label=label, service=CONFIG.service_name)


def _served_latency_ms(shadow_ms: float) -> float:
    """Milliseconds since the request's clock started, less the shadow scoring's."""
    started = app.context.get("started")
    latency_ms = 0.0 if started is None else (time.perf_counter() - started) * 1000.0
    return round(max(0.0, latency_ms - shadow_ms), 3)


def _log_request(
    origin: RequestSource,
    status: int,
    label: str | None,
    latency_ms: float,
    text_chars: int | None,
    shadow: dict[str, str] | None,
    shadow_ms: float | None,
    batch: dict[str, Any] | None = None,
) -> None:
    """One per-request record (one per text of a batch, `batch` holding its batch_* keys)."""
    context = app.lambda_context
    logger.info(
        REQUEST_LOG_MESSAGE,
        extra={
            "model_version": SERVICE.version,
            "function_version": getattr(context, "function_version", None),
            "label": label,
            "latency_ms": latency_ms,
            "text_chars": text_chars,
            "status": status,
            "source": origin.source,
            "probe_id": origin.probe_id,
            "shadow": shadow or {},
            "shadow_ms": None if shadow_ms is None else round(shadow_ms, 3),
            **(batch or {}),
        },
    )


def _response(
    status: int,
    body: dict[str, Any],
    origin: RequestSource,
    latency_ms: float,
    headers: dict[str, str] | None,
) -> Response:
    """The proxy response: the body, CORS, the model version and, for the probe and the hook, the
    logged latency."""
    headers = {**CORS_HEADERS, **(headers or {})}
    version = SERVICE.version
    if version is not None:
        headers["X-Model-Version"] = version
    # The same number the record logs, for the hook's paired measurement; a consumer's answer
    # never carries it (its timing is the service's business, and the request id decides).
    if origin.source != LIVE:
        headers[LATENCY_HEADER] = f"{latency_ms:.3f}"
    return Response(status_code=int(status), content_type="application/json", body=body, headers=headers)


@app.post(ROUTE)
def classify() -> Response:
    """Label one text: 200 {"category", "label", "scores"}."""
    event = app.current_event
    text = read_text(event.body, event.is_base64_encoded, CONFIG.max_text_chars)
    prediction = SERVICE.predict(text)
    body = prediction.as_dict()
    shadow, shadow_ms = _score_shadow(text)
    return _reply(
        HTTPStatus.OK, body, label=prediction.label, text_chars=len(text), shadow=shadow, shadow_ms=shadow_ms
    )


@app.post(BATCH_ROUTE)
def classify_batch() -> Response:
    """Label 1 to 100 texts: 200 {"results": [{"category", "label", "scores"}, ...]} in their order,
    each what POST /infer/hate-speech answers for that text."""
    event = app.current_event
    texts = read_texts(event.body, event.is_base64_encoded, CONFIG.max_text_chars)
    predictions = [SERVICE.predict(text) for text in texts]
    shadows = [_score_shadow(text) for text in texts]
    shadow_total = sum(ms or 0.0 for _, ms in shadows)
    batch_ms = _served_latency_ms(shadow_total)
    origin = source_of_event(event.raw_event)
    per_text_ms = round(batch_ms / len(texts), 3)
    scored = zip(texts, predictions, shadows, strict=True)
    for index, (text, prediction, (shadow, shadow_ms)) in enumerate(scored):
        batch = {"batch_index": index, "batch_size": len(texts), "batch_latency_ms": batch_ms}
        label = prediction.label
        _log_request(origin, HTTPStatus.OK, label, per_text_ms, len(text), shadow, shadow_ms, batch)
    if origin.source == LIVE:
        _publish_batch_metrics([p.label for p in predictions], batch_ms)
    body = {"results": [prediction.as_dict() for prediction in predictions]}
    return _response(HTTPStatus.OK, body, origin, batch_ms, None)


def _publish_batch_metrics(labels: list[str], batch_ms: float) -> None:
    """A batch's metrics: Prediction counts its texts per label, in the single route's two
    dimension sets (one EMF record per label: a record has one Label); BatchLatency (ms) and
    BatchTexts (count) by ModelVersion, one sample per batch request."""
    version = SERVICE.version
    if version is None:  # unreachable: a batch is only scored with a model loaded
        return
    for label, count in sorted(Counter(labels).items()):
        _label_dimensions(version, label)
        metrics.add_metric(name="Prediction", unit=MetricUnit.Count, value=count)
        metrics.flush_metrics()
    metrics.add_dimension(name="ModelVersion", value=version)
    metrics.add_metric(name="BatchLatency", unit=MetricUnit.Milliseconds, value=batch_ms)
    metrics.add_metric(name="BatchTexts", unit=MetricUnit.Count, value=len(labels))


def _score_shadow(text: str) -> tuple[dict[str, str], float | None]:
    """The other models' labels of the text and the ms they took (None: no shadow model)."""
    if not SERVICE.shadows:
        return {}, None
    started = time.perf_counter()
    labels, failed = SERVICE.shadow_labels(text)
    shadow_ms = (time.perf_counter() - started) * 1000.0
    for model, exception_name in failed.items():
        logger.warning(
            "shadow scoring failed", extra={"shadow_model": model, "exception_name": exception_name}
        )
    return labels, shadow_ms


@app.route(ROUTE, method="OPTIONS")
@app.route(BATCH_ROUTE, method="OPTIONS")
def preflight() -> Response:
    """CORS preflight: 200 with the CORS headers."""
    return _reply(HTTPStatus.OK, {})


@app.not_found
def no_route(exc: NotFoundError) -> Response:
    """404 for an unknown path, 405 for a method the route does not take."""
    path = app.current_event.path.rstrip("/")
    if path in (ROUTE, BATCH_ROUTE):
        method = app.current_event.http_method.upper()
        example = EXAMPLE if path == ROUTE else BATCH_EXAMPLE
        return _reply(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"issue": f"{path} does not take {method[:16]}: send POST with a JSON body like {example}."},
            headers={"Allow": "OPTIONS, POST"},
        )
    return _reply(
        HTTPStatus.NOT_FOUND,
        {"issue": f"No such route: this API serves POST {ROUTE} with a JSON body like {EXAMPLE}."},
    )


@app.exception_handler(RequestError)
def bad_request(exc: RequestError) -> Response:
    """400, 413 or 422 with the request's issue."""
    return _reply(exc.status, {"issue": exc.issue}, text_chars=exc.text_chars)


@app.exception_handler(ModelUnavailable)
def model_unavailable(exc: ModelUnavailable) -> Response:
    """500: this environment has no model; the log says why."""
    logger.error("model not loaded: answering 500", extra={"reason": str(exc)})
    return _reply(HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR)


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    """500 with a generic body; the stack goes to the log."""
    # Type and frames only: an exception's message may quote the request's text (a KeyError on a
    # token, say), and the text must never reach the log.
    stack = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    logger.error("unexpected failure", extra={"exception_name": type(exc).__name__, "stack": stack})
    return _reply(HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
