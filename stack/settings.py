"""The deployed stack's typed answers, read from template.yaml and samconfig.toml: no second copy.

load_settings reads one samconfig environment (`local` by default), sets the template's Parameters
(that environment's parameter_overrides over the Defaults) and resolves the template through
stack.template.resolve, the way CloudFormation would deploy it for that environment. References to
resources that only exist on AWS resolve to stand-ins: a function's name, an alarm's name, a log
group's name, or "<name>.<Attribute>" for an attribute.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from stack.deployment import Plan, plan_for
from stack.errors import SettingsError
from stack.samconfig import DEFAULT_SAMCONFIG, LOCAL_ENV, read_samconfig
from stack.template import DEFAULT_TEMPLATE, load_template, parameter_values, pseudo_parameters, resolve

INFERENCE_HANDLER = "infer.app.lambda_handler"
_PERIOD_SECONDS = {"DAY": 86_400, "WEEK": 7 * 86_400, "MONTH": 31 * 86_400}
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class FunctionSettings:
    """One AWS::Serverless::Function of the template, as deployed in the chosen environment."""

    logical_id: str  # the template's logical id, e.g. "InferenceFunction"
    name: str  # FunctionName, resolved, e.g. "hate-speech-prod-infer"
    handler: str  # Handler, e.g. "infer.app.lambda_handler"
    runtime: str  # Runtime (Globals included), e.g. "python3.12"
    memory_mb: int  # MemorySize (Globals included; Lambda's default 128)
    timeout_s: float  # Timeout in seconds (Globals included; Lambda's default 3)
    environment: Mapping[str, str]  # Environment.Variables, Globals merged, every value a string
    alias: str | None  # AutoPublishAlias, e.g. "live"


@dataclass(frozen=True)
class Route:
    """One Api event of the inference function: a method on a path of the REST API."""

    method: str  # upper-case HTTP method, e.g. "POST"
    path: str  # resource path, e.g. "/infer/hate-speech"
    api_key_required: bool  # whether the method needs x-api-key


@dataclass(frozen=True)
class Cors:
    """The API's Cors property: what the OPTIONS preflight (SAM's mock integration) answers."""

    allow_origin: str  # Access-Control-Allow-Origin, e.g. "*"
    allow_headers: str | None  # Access-Control-Allow-Headers, e.g. "Content-Type,X-Api-Key"
    allow_methods: str | None  # Access-Control-Allow-Methods, e.g. "OPTIONS,POST"
    max_age: str | None  # Access-Control-Max-Age in seconds, e.g. "600"
    preflight_needs_key: bool  # Auth.AddApiKeyRequiredToCorsPreflight (API Gateway's default: true)


@dataclass(frozen=True)
class AlarmSettings:
    """One CloudWatch alarm (of DeploymentPreference.Alarms), everything the local controller evaluates
    it with; the defaults are those of a one-minute, one-datapoint alarm."""

    name: str  # AlarmName, resolved
    namespace: str  # Namespace, e.g. "AWS/Lambda", "AWS/ApiGateway" or the project's (CanaryVerdict)
    metric: str  # MetricName, e.g. "Errors"
    statistic: str  # Statistic or ExtendedStatistic: Sum | Maximum | Minimum | Average | SampleCount | pNN
    threshold: float  # Threshold
    comparison: str  # ComparisonOperator, e.g. "GreaterThanThreshold"
    period_s: float = 60.0  # Period in seconds: one datapoint per period
    evaluation_periods: int = 1  # EvaluationPeriods
    datapoints_to_alarm: int = 1  # DatapointsToAlarm (EvaluationPeriods when the template omits it)
    treat_missing_data: str = "notBreaching"  # TreatMissingData: notBreaching | breaching | ignore | missing
    logical_id: str = ""  # the template's logical id, e.g. "CanaryErrorsAlarm"
    dimensions: Mapping[str, str] = field(
        default_factory=lambda: _EMPTY
    )  # dimension name -> resolved value (stand-ins for AWS's)

    @property
    def new_version_only(self) -> bool:
        """Dimension ExecutedVersion: only the new version's invocations count."""
        return "ExecutedVersion" in self.dimensions

    def breaches(self, value: float) -> bool:
        """Whether one datapoint is on the alarming side of the threshold."""
        op = self.comparison
        if op == "GreaterThanThreshold":
            return value > self.threshold
        if op == "GreaterThanOrEqualToThreshold":
            return value >= self.threshold
        if op == "LessThanThreshold":
            return value < self.threshold
        if op == "LessThanOrEqualToThreshold":
            return value <= self.threshold
        raise ValueError(f"alarm {self.name}: comparison {op!r} is not supported locally")


@dataclass(frozen=True)
class PlanSettings:
    """One AWS::ApiGateway::UsagePlan of the API: the limits every key on it gets, each its own."""

    name: str  # UsagePlanName after "<AppName>-<Environment>-", e.g. "standard"
    logical_id: str  # the template's logical id, e.g. "UsagePlan"
    quota_limit: int | None  # Quota.Limit: requests per key per period; None: no quota
    quota_period: str  # Quota.Period: "DAY", "WEEK" or "MONTH"
    quota_offset: int  # Quota.Offset
    rate_limit: float | None  # Throttle.RateLimit: tokens per second of each key's bucket; None: none
    burst_limit: int | None  # Throttle.BurstLimit: that bucket's capacity
    # ApiStages[].Throttle: "/resource/path/METHOD" -> (RateLimit, BurstLimit), a bucket per key and
    # method that applies on top of the plan's own (API Gateway's method-level throttling).
    method_throttles: Mapping[str, tuple[float, int]] = field(default_factory=dict)

    def lifted(self, *, quota: bool = False, throttle: bool = False) -> PlanSettings:
        """This plan without its quota, or without its throttles (the plan's and every method's)."""
        changes: dict[str, Any] = {"quota_limit": None} if quota else {}
        if throttle:
            changes.update(rate_limit=None, burst_limit=None, method_throttles=_EMPTY)
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class StackSettings:
    """Everything the local stack takes from template.yaml + samconfig.toml for one environment."""

    template_path: Path  # the template read
    samconfig_path: Path  # the samconfig read
    samconfig_env: str  # the samconfig environment whose parameter_overrides apply, e.g. "local"
    parameters: Mapping[str, str]  # every template parameter's value after overrides
    stack_name: str  # samconfig's stack_name for the environment (AWS::StackName)
    region: str  # AWS::Region stand-in (AWS_REGION / AWS_DEFAULT_REGION, else us-east-1)
    environment: str  # the Environment parameter, e.g. "prod"
    model_version: str  # the ModelVersion parameter: the model the stack serves, e.g. "v1"
    model_versions: tuple[str, ...]  # the ModelVersion parameter's AllowedValues (every servable model)
    api_name: str  # the REST API's Name, resolved
    stage_name: str  # the API's StageName: the first path segment of every URL, e.g. "v1"
    routes: tuple[Route, ...]  # the inference function's Api events
    cors: Cors | None  # the API's Cors property, None when it has none
    gateway_response_headers: Mapping[str, Mapping[str, str]]  # "DEFAULT_4XX"/"DEFAULT_5XX" -> headers
    api_key_required: bool  # Auth.ApiKeyRequired of the API
    inference: FunctionSettings  # the function behind the routes
    functions: Mapping[str, FunctionSettings]  # every function of the template by logical id
    deployment_type: str  # DeploymentPreference.Type, e.g. "Canary10Percent5Minutes" or "AllAtOnce"
    plan: Plan  # that type's plan of traffic steps (stack.deployment.plan_for)
    alarms: tuple[AlarmSettings, ...]  # DeploymentPreference.Alarms, in the template's order
    pre_traffic_hook: str | None  # logical id of the PreTraffic hook function, None when none
    latency_slo_ms: float  # the LatencySloMs parameter
    max_text_chars: int  # the inference function's MAX_TEXT_CHARS (the MaxTextChars parameter)
    payload_limit_bytes: int = 10 * 1024 * 1024  # API Gateway's request payload limit (REST API)
    header_limit_bytes: int = 10_240  # API Gateway's limit on request line + header values (REST API)
    invoke_payload_limit_bytes: int = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
    integration_timeout_s: float = 29.0  # API Gateway's default (and maximum) integration timeout
    conditions: Mapping[str, bool] = field(default_factory=dict)  # the template's conditions, evaluated
    plans: Mapping[str, PlanSettings] = field(default_factory=dict)  # every usage plan of the API by name
    # The plan of the stack's own ApiKey (its UsagePlanKey): the `serve --api-key` key's.
    default_plan: str | None = None

    @property
    def name_prefix(self) -> str:
        """ "<AppName>-<Environment>-": what the stack's usage plans and API keys are named after."""
        return name_prefix(self.parameters, self.environment)

    @property
    def key_plan(self) -> PlanSettings | None:
        """The usage plan of the stack's own ApiKey (default_plan); None when the key has none."""
        return self.plans.get(self.default_plan) if self.default_plan else None

    def with_key_plan(self, **changes: Any) -> StackSettings:
        """These settings with fields of the own key's plan changed (e.g. quota_limit=None)."""
        if self.key_plan is None:
            raise ValueError("the stack's own API key has no usage plan")
        plan = dataclasses.replace(self.key_plan, **changes)
        return dataclasses.replace(self, plans=MappingProxyType({**self.plans, plan.name: plan}))

    def lifted(self, *, quota: bool = False, throttle: bool = False) -> StackSettings:
        """Every usage plan without its quota (`serve --no-quota`; a rehearsal whose one key stands for
        many users), or without its throttles (`serve --no-throttle`: capacity benchmarks)."""
        plans = {name: p.lifted(quota=quota, throttle=throttle) for name, p in self.plans.items()}
        return dataclasses.replace(self, plans=MappingProxyType(plans))

    @property
    def canary_percent(self) -> int:
        """Percent of traffic the first step gives the new version (100 for AllAtOnce)."""
        return round(self.plan.steps[0].weight * 100) if self.plan.steps else 100


def name_prefix(parameters: Mapping[str, str], environment: str = "") -> str:
    """What the stack's usage plans and API keys are named after, "<AppName>-<Environment>-" (the
    template's `!Sub "${AppName}-${Environment}-..."`); `environment` stands in when the parameters
    lack one. The one home of the rule: the settings, the local stand-ins and deploy/consumers.py."""
    return f"{parameters.get('AppName', 'hate-speech')}-{parameters.get('Environment', environment)}-"


def allowed_model_versions(template: str | os.PathLike[str] = DEFAULT_TEMPLATE) -> tuple[str, ...]:
    """The ModelVersion parameter's AllowedValues: every model a stack may serve, without resolving
    the template (no samconfig needed)."""
    return _allowed_models(load_template(template))


def load_settings(
    template: str | os.PathLike[str] = DEFAULT_TEMPLATE,
    samconfig: str | os.PathLike[str] = DEFAULT_SAMCONFIG,
    env: str = LOCAL_ENV,
) -> StackSettings:
    """The settings of samconfig environment `env` (its parameter_overrides over the template's
    Parameter defaults). Raises SettingsError naming the file and key when something is unusable."""
    template_path, samconfig_path = Path(template), Path(samconfig)
    raw = load_template(template_path)
    config = read_samconfig(samconfig_path, env)
    parameters = parameter_values(raw, config.parameter_overrides, template_path, samconfig_path, env)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        resolved, conditions = resolve(raw, parameters, pseudo_parameters(region, config.stack_name))
    except SettingsError as exc:
        raise SettingsError(f"{template_path}: {exc}") from None
    except Exception as exc:  # SAM CLI's InvalidIntrinsicException, InvalidSymbolException, ...
        raise SettingsError(f"{template_path}: cannot resolve the template ({exc})") from None
    resources = resolved["Resources"]
    globals_fn = (resolved.get("Globals") or {}).get("Function") or {}
    functions = {
        logical: _function(logical, res.get("Properties") or {}, globals_fn)
        for logical, res in resources.items()
        if res.get("Type") == "AWS::Serverless::Function"
    }
    inference = next((f for f in functions.values() if f.handler == INFERENCE_HANDLER), None)
    if inference is None:
        raise SettingsError(f"{template_path}: no function has Handler {INFERENCE_HANDLER}")
    api = _api(raw, resources, inference.logical_id, template_path)
    plans, default_plan = _plans(raw, resources, api["api_id"], parameters, template_path)
    return StackSettings(
        template_path=template_path,
        samconfig_path=samconfig_path,
        samconfig_env=env,
        parameters=MappingProxyType(dict(parameters)),
        stack_name=config.stack_name,
        region=region,
        environment=parameters.get("Environment", env),
        model_version=inference.environment.get("MODEL_VERSION", parameters.get("ModelVersion", "")),
        model_versions=_allowed_models(raw),
        **{k: v for k, v in api.items() if k != "api_id"},
        inference=inference,
        functions=MappingProxyType(functions),
        **_deployment(raw, resources, inference.logical_id, template_path),
        latency_slo_ms=float(parameters.get("LatencySloMs", "100")),
        max_text_chars=int(float(inference.environment.get("MAX_TEXT_CHARS", "5000"))),
        conditions=MappingProxyType(conditions),
        plans=MappingProxyType(plans),
        default_plan=default_plan,
    )


def _allowed_models(raw: Mapping[str, Any]) -> tuple[str, ...]:
    spec = (raw.get("Parameters") or {}).get("ModelVersion") or {}
    return tuple(str(v) for v in spec.get("AllowedValues") or ())


def _ref(value: Any) -> str | None:
    """The logical id of an unresolved {"Ref": id}, else None (the raw template names resources so)."""
    return value.get("Ref") if isinstance(value, dict) else None


def _function(logical: str, props: dict[str, Any], globals_fn: dict[str, Any]) -> FunctionSettings:
    """One function from its resolved Properties, the resolved Globals.Function merged in."""
    variables = {
        **((globals_fn.get("Environment") or {}).get("Variables") or {}),
        **((props.get("Environment") or {}).get("Variables") or {}),
    }
    environment = {  # AWS::NoValue drops a variable; YAML booleans reach Lambda as "true"/"false"
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in variables.items()
        if value is not None
    }
    alias = props.get("AutoPublishAlias", globals_fn.get("AutoPublishAlias"))
    return FunctionSettings(
        logical_id=logical,
        name=str(props.get("FunctionName", logical)),
        handler=str(props.get("Handler", globals_fn.get("Handler", ""))),
        runtime=str(props.get("Runtime", globals_fn.get("Runtime", ""))),
        memory_mb=int(props.get("MemorySize", globals_fn.get("MemorySize", 128))),
        timeout_s=float(props.get("Timeout", globals_fn.get("Timeout", 3))),
        environment=MappingProxyType(environment),
        alias=None if alias is None else str(alias),
    )


def _api(raw: dict[str, Any], resources: dict[str, Any], inference_id: str, template: Path) -> dict[str, Any]:
    """The StackSettings fields of the REST API behind the inference function's Api events (and its
    logical id, "api_id"). Which API an event uses is read from the raw template's RestApiId Ref."""
    raw_events = (raw["Resources"][inference_id].get("Properties") or {}).get("Events") or {}
    events = (resources[inference_id].get("Properties") or {}).get("Events") or {}
    api_ids = {
        _ref((e.get("Properties") or {}).get("RestApiId"))
        for e in raw_events.values()
        if e.get("Type") == "Api"
    }
    if not api_ids:
        raise SettingsError(f"{template}: {inference_id} has no Api event")
    if len(api_ids) > 1:
        raise SettingsError(f"{template}: {inference_id} events use more than one API")
    api_id = api_ids.pop()
    api_props = (resources.get(api_id) or {}).get("Properties") or {} if api_id else {}
    api_auth = api_props.get("Auth") or {}
    api_key_required = bool(api_auth.get("ApiKeyRequired", False))
    routes = tuple(
        Route(
            method=str(props["Method"]).upper(),
            path="/" + str(props["Path"]).strip("/"),
            api_key_required=bool((props.get("Auth") or {}).get("ApiKeyRequired", api_key_required)),
        )
        for props in (e.get("Properties") or {} for e in events.values() if e.get("Type") == "Api")
    )
    gateway_headers = {
        kind: MappingProxyType(
            {
                k: _unquote(v)
                for k, v in (((spec or {}).get("ResponseParameters") or {}).get("Headers") or {}).items()
            }
        )
        for kind, spec in (api_props.get("GatewayResponses") or {}).items()
    }
    return {
        "api_id": api_id,
        "api_name": str(api_props.get("Name", api_id or "api")),
        "stage_name": str(api_props.get("StageName", "Prod")),
        "routes": routes,
        "cors": _cors(api_props.get("Cors"), api_auth),
        "gateway_response_headers": MappingProxyType(gateway_headers),
        "api_key_required": api_key_required,
    }


def _cors(spec: Any, api_auth: Mapping[str, Any]) -> Cors | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):  # the short form is the AllowOrigin alone
        spec = {"AllowOrigin": spec}
    return Cors(
        allow_origin=_unquote(spec.get("AllowOrigin", "'*'")),
        allow_headers=_unquote(spec["AllowHeaders"]) if "AllowHeaders" in spec else None,
        allow_methods=_unquote(spec["AllowMethods"]) if "AllowMethods" in spec else None,
        max_age=_unquote(spec["MaxAge"]) if "MaxAge" in spec else None,
        preflight_needs_key=bool(api_auth.get("AddApiKeyRequiredToCorsPreflight", True)),
    )


def _plans(
    raw: dict[str, Any],
    resources: dict[str, Any],
    api_id: str | None,
    parameters: Mapping[str, str],
    template: Path,
) -> tuple[dict[str, PlanSettings], str | None]:
    """The API's usage plans by name, and the name of the one the stack's API key is on (its
    UsagePlanKey's; the first plan when no key names one)."""
    prefix = name_prefix(parameters)
    plans: dict[str, PlanSettings] = {}
    for logical, res in raw["Resources"].items():
        if res.get("Type") != "AWS::ApiGateway::UsagePlan":
            continue
        raw_stages = (res.get("Properties") or {}).get("ApiStages") or []
        if api_id and raw_stages and not any(_ref(s.get("ApiId")) == api_id for s in raw_stages):
            continue  # a plan for another API
        props = resources[logical].get("Properties") or {}
        full_name = str(props.get("UsagePlanName", logical))
        name = full_name[len(prefix) :] if full_name.startswith(prefix) else full_name
        plans[name] = _plan(name, logical, props, template)
    by_logical = {plan.logical_id: name for name, plan in plans.items()}
    keyed = (
        by_logical.get(_ref((res.get("Properties") or {}).get("UsagePlanId")) or "")
        for res in raw["Resources"].values()
        if res.get("Type") == "AWS::ApiGateway::UsagePlanKey"
    )
    return plans, next((name for name in keyed if name), next(iter(plans), None))


def _plan(name: str, logical: str, props: Mapping[str, Any], template: Path) -> PlanSettings:
    quota, throttle = props.get("Quota") or {}, props.get("Throttle") or {}
    period = str(quota.get("Period", "MONTH")).upper()
    if period not in _PERIOD_SECONDS:
        raise SettingsError(
            f"{template}: usage plan {logical} Quota.Period {period!r} is not DAY, WEEK or MONTH"
        )
    methods = {
        str(method): (float(limits["RateLimit"]), int(float(limits.get("BurstLimit", 1))))
        for stage in props.get("ApiStages") or []
        for method, limits in (stage.get("Throttle") or {}).items()
        if "RateLimit" in (limits or {})
    }
    return PlanSettings(
        name=name,
        logical_id=logical,
        quota_limit=int(float(quota["Limit"])) if "Limit" in quota else None,
        quota_period=period,
        quota_offset=int(quota.get("Offset", 0)),
        rate_limit=float(throttle["RateLimit"]) if "RateLimit" in throttle else None,
        burst_limit=int(float(throttle["BurstLimit"])) if "BurstLimit" in throttle else None,
        method_throttles=MappingProxyType(methods),
    )


def _deployment(
    raw: dict[str, Any], resources: dict[str, Any], inference_id: str, template: Path
) -> dict[str, Any]:
    """The StackSettings fields of the inference function's DeploymentPreference: its type and plan,
    its alarms and its PreTraffic hook (alarms and hook are Refs in the raw template)."""
    preference = (resources[inference_id].get("Properties") or {}).get("DeploymentPreference") or {}
    raw_preference = (raw["Resources"][inference_id].get("Properties") or {}).get(
        "DeploymentPreference"
    ) or {}
    deployment_type = str(preference.get("Type", "AllAtOnce"))
    try:
        plan = plan_for(deployment_type)
    except ValueError as exc:
        raise SettingsError(f"{template}: DeploymentPreference.Type: {exc}") from None
    alarm_ids = [_ref(a) for a in raw_preference.get("Alarms") or []]
    return {
        "deployment_type": deployment_type,
        "plan": plan,
        "alarms": tuple(_alarm(logical, resources, template) for logical in alarm_ids if logical),
        "pre_traffic_hook": _ref((raw_preference.get("Hooks") or {}).get("PreTraffic")),
    }


def _alarm(logical: str, resources: dict[str, Any], template: Path) -> AlarmSettings:
    resource = resources.get(logical)
    if resource is None or resource.get("Type") != "AWS::CloudWatch::Alarm":
        raise SettingsError(f"{template}: DeploymentPreference alarm {logical} is no AWS::CloudWatch::Alarm")
    props = resource.get("Properties") or {}
    evaluation_periods = int(props.get("EvaluationPeriods", 1))
    dimensions = {str(d["Name"]): str(d["Value"]) for d in props.get("Dimensions") or []}
    return AlarmSettings(
        name=str(props.get("AlarmName", logical)),
        namespace=str(props.get("Namespace", "")),
        metric=str(props.get("MetricName", "")),
        statistic=str(props.get("Statistic") or props.get("ExtendedStatistic") or ""),
        threshold=float(props.get("Threshold", 0)),
        comparison=str(props.get("ComparisonOperator", "")),
        period_s=float(props.get("Period", 60)),
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=int(props.get("DatapointsToAlarm", evaluation_periods)),
        treat_missing_data=str(props.get("TreatMissingData", "missing")),
        logical_id=logical,
        dimensions=MappingProxyType(dimensions),
    )


def _unquote(value: Any) -> str:
    """SAM's Cors and GatewayResponses values are quoted string literals ("'*'"): strip the quotes."""
    text = str(value)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text
