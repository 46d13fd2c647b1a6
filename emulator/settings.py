"""The local stack's settings, read from template.yaml and samconfig.toml: no second copy.

The template's Parameter defaults, overridden by the `parameter_overrides` of one samconfig
environment (`local` by default), are resolved through the intrinsic functions the template
uses (Ref, Sub, If, Equals, Or, And, Not, FindInMap, GetAtt), the way CloudFormation would for
that environment. References to resources that only exist on AWS resolve to stand-ins: a
function's name, an alarm's name, a log group's name, or "Logical.Attribute" for an attribute.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "template.yaml"
DEFAULT_SAMCONFIG = ROOT / "samconfig.toml"
INFERENCE_HANDLER = "infer.app.lambda_handler"
LOCAL_ACCOUNT = "123456789012"
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
_SHIFT = re.compile(r"^(Canary|Linear)(\d+)Percent(?:Every)?(\d+)Minutes?$")
_PERIOD_SECONDS = {"DAY": 86_400, "WEEK": 7 * 86_400, "MONTH": 31 * 86_400}


class SettingsError(ValueError):
    """template.yaml or samconfig.toml cannot configure the local stack; the message says where."""


class _CfnLoader(yaml.SafeLoader):
    """PyYAML's safe loader that reads CloudFormation's short-form tags (!Ref, !Sub, !If, ...) into
    their long forms ({"Ref": ...}, {"Fn::Sub": ...}), as CloudFormation and SAM do."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if suffix == "GetAtt" and isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node).split(".", 1)}
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str | os.PathLike[str] = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """A CloudFormation/SAM template as a dict, short-form tags in their long forms."""
    try:
        with open(path, encoding="utf-8") as fh:
            template = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the template ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise SettingsError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return template


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
    """One CloudWatch alarm of the inference function's DeploymentPreference.Alarms."""

    logical_id: str  # the template's logical id, e.g. "CanaryErrorsAlarm"
    name: str  # AlarmName, resolved
    namespace: str  # Namespace, e.g. "AWS/Lambda"
    metric: str  # MetricName, e.g. "Errors"
    statistic: str  # Statistic or ExtendedStatistic, e.g. "Sum", "Maximum", "p99"
    threshold: float  # Threshold
    comparison: str  # ComparisonOperator, e.g. "GreaterThanThreshold"
    period_s: int  # Period in seconds
    evaluation_periods: int  # EvaluationPeriods
    datapoints_to_alarm: int  # DatapointsToAlarm (EvaluationPeriods when absent)
    treat_missing_data: str  # TreatMissingData, e.g. "notBreaching"
    dimensions: Mapping[str, str]  # dimension name -> resolved value (stand-ins for AWS-only values)


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
    model_version: str  # the ModelVersion parameter: the model the stack serves, "v1" or "v2"
    model_versions: tuple[str, ...]  # the ModelVersion parameter's AllowedValues (every servable model)
    api_name: str  # the REST API's Name, resolved
    stage_name: str  # the API's StageName: the first path segment of every URL, e.g. "v1"
    routes: tuple[Route, ...]  # the inference function's Api events
    cors: Cors | None  # the API's Cors property, None when it has none
    gateway_response_headers: Mapping[str, Mapping[str, str]]  # "DEFAULT_4XX"/"DEFAULT_5XX" -> headers
    api_key_required: bool  # Auth.ApiKeyRequired of the API
    quota_limit: int | None  # the usage plan's Quota.Limit (requests per key per period); None: none
    quota_period: str  # Quota.Period: "DAY", "WEEK" or "MONTH"
    quota_offset: int  # Quota.Offset: days into the period that the quota resets
    rate_limit: float | None  # Throttle.RateLimit: tokens per second of the key's bucket; None: none
    burst_limit: int | None  # Throttle.BurstLimit: the bucket's capacity; None: none
    inference: FunctionSettings  # the function behind the routes
    functions: Mapping[str, FunctionSettings]  # every function of the template by logical id
    deployment_type: str  # DeploymentPreference.Type, e.g. "Canary10Percent5Minutes" or "AllAtOnce"
    traffic_shift: str  # "canary", "linear" or "all_at_once"
    canary_percent: int  # percent of traffic per step (100 for AllAtOnce)
    interval_minutes: int  # minutes per step (0 for AllAtOnce)
    alarms: tuple[AlarmSettings, ...]  # DeploymentPreference.Alarms, in the template's order
    pre_traffic_hook: str | None  # logical id of the PreTraffic hook function, None when none
    latency_slo_ms: float  # the LatencySloMs parameter
    max_text_chars: int  # the MaxTextChars parameter
    payload_limit_bytes: int = 10 * 1024 * 1024  # API Gateway's request payload limit (REST API)
    header_limit_bytes: int = 10_240  # API Gateway's limit on request line + header values (REST API)
    invoke_payload_limit_bytes: int = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
    integration_timeout_s: float = 29.0  # API Gateway's default (and maximum) integration timeout
    conditions: Mapping[str, bool] = field(default_factory=dict)  # the template's conditions, evaluated
    # Every usage plan of the API by name; quota_* / rate_limit / burst_limit above are those of
    # default_plan, the plan of the stack's own ApiKey (its UsagePlanKey), the `serve --api-key` key's.
    plans: Mapping[str, PlanSettings] = field(default_factory=dict)
    default_plan: str | None = None

    @property
    def quota_period_seconds(self) -> int:
        """Nominal length of one quota period (a month counts as 31 days)."""
        return _PERIOD_SECONDS[self.quota_period]


def load_settings(
    template: str | os.PathLike[str] = DEFAULT_TEMPLATE,
    samconfig: str | os.PathLike[str] = DEFAULT_SAMCONFIG,
    env: str = "local",
) -> StackSettings:
    """The settings of samconfig environment `env` (its parameter_overrides over the template's
    Parameter defaults). Raises SettingsError naming the file and key when something is unusable."""
    template_path, samconfig_path = Path(template), Path(samconfig)
    doc = load_template(template_path)
    stack_name, overrides = _read_samconfig(samconfig_path, env)
    parameters = _parameters(doc, overrides, template_path, samconfig_path, env)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    resolver = _Resolver(doc, parameters, region=region, stack_name=stack_name)
    return _build(doc, resolver, template_path, samconfig_path, env, stack_name, parameters)


# ----------------------------------------------------------------------------- samconfig


def _read_samconfig(path: Path, env: str) -> tuple[str, dict[str, str]]:
    try:
        with open(path, "rb") as fh:
            config = tomllib.load(fh)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read samconfig ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    section = config.get(env)
    if not isinstance(section, dict):
        known = ", ".join(sorted(k for k, v in config.items() if isinstance(v, dict))) or "none"
        raise SettingsError(f"{path}: no environment [{env}.*] (environments: {known})")
    global_params = section.get("global", {}).get("parameters", {})
    deploy_params = section.get("deploy", {}).get("parameters", {})
    stack_name = str(
        deploy_params.get("stack_name") or global_params.get("stack_name") or f"hate-speech-{env}"
    )
    raw = deploy_params.get("parameter_overrides", global_params.get("parameter_overrides", []))
    items = raw.split() if isinstance(raw, str) else list(raw)
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise SettingsError(
                f"{path}: [{env}.deploy.parameters] parameter_overrides item {item!r} is not Key=Value"
            )
        overrides[key.strip()] = value.strip().strip("\"'")
    return stack_name, overrides


def _parameters(
    doc: dict[str, Any], overrides: dict[str, str], template: Path, samconfig: Path, env: str
) -> dict[str, str]:
    declared = doc.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise SettingsError(
            f"{samconfig}: [{env}] overrides parameters the template lacks: {', '.join(unknown)}"
        )
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value, where = overrides[name], f"{samconfig}: [{env}] parameter_overrides {name}"
        elif "Default" in spec:
            value, where = str(spec["Default"]), f"{template}: Parameters.{name}.Default"
        else:
            raise SettingsError(
                f"{template}: parameter {name} has no Default and {samconfig} [{env}] sets none"
            )
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(a) for a in allowed]:
            raise SettingsError(f"{where}={value!r} is not one of {', '.join(map(str, allowed))}")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                raise SettingsError(f"{where}={value!r} is not a number") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise SettingsError(f"{where}={value!r} is below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise SettingsError(f"{where}={value!r} is above MaxValue {spec['MaxValue']}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise SettingsError(f"{where}={value!r} does not match AllowedPattern {pattern}")
        values[name] = value
    return values


# ----------------------------------------------------------------------------- intrinsics


class _Resolver:
    """Evaluates the intrinsic functions of one template for one set of parameter values."""

    def __init__(self, doc: dict[str, Any], parameters: dict[str, str], *, region: str, stack_name: str):
        self.doc = doc
        self.resources: dict[str, Any] = doc["Resources"]
        self.parameters = parameters
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": LOCAL_ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{LOCAL_ACCOUNT}:stack/{stack_name}/local",
            "AWS::NoValue": None,
        }
        self.conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            if name in self._evaluating:
                raise SettingsError(f"condition {name} refers to itself")
            spec = (self.doc.get("Conditions") or {}).get(name)
            if spec is None:
                raise SettingsError(f"the template uses condition {name} but does not define it")
            self._evaluating.add(name)
            self.conditions[name] = bool(self.resolve(spec))
            self._evaluating.discard(name)
        return self.conditions[name]

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        logical, _, attribute = name.partition(".")
        resource = self.resources.get(logical)
        if resource is None:  # a resource SAM generates (ServerlessDeploymentApplication, ...)
            return name
        props = resource.get("Properties") or {}
        if attribute:  # SAM's Function.Version / Function.Alias / Api.Stage references
            return f"{self._physical_name(logical, resource, props)}.{attribute}"
        return self._physical_name(logical, resource, props)

    def _physical_name(self, logical: str, resource: dict[str, Any], props: dict[str, Any]) -> str:
        for key in ("FunctionName", "AlarmName", "LogGroupName", "TopicName", "Name", "UsagePlanName"):
            if key in props:
                return str(self.resolve(props[key]))
        return logical

    def sub(self, value: Any) -> str:
        if isinstance(value, list):
            text, variables = value[0], {k: self.resolve(v) for k, v in (value[1] or {}).items()}
        else:
            text, variables = value, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources and name not in self.parameters:
                logical, attribute = name.split(".", 1)
                if attribute in ("Version", "Alias", "Stage"):
                    return str(self.ref(name))
                return f"{self.ref(logical)}.{attribute}"
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::FindInMap":
                mapping, top, second = (self.resolve(a) for a in arg)
                try:
                    return self.doc["Mappings"][mapping][top][second]
                except KeyError:
                    raise SettingsError(f"FindInMap [{mapping}, {top}, {second}] finds nothing") from None
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return f"{self.ref(logical)}.{attribute}"
            if key == "Fn::Join":
                separator, items = arg
                return str(separator).join(str(i) for i in self.resolve(items))
        return {k: self.resolve(v) for k, v in value.items()}


# ----------------------------------------------------------------------------- settings


def _build(
    doc: dict[str, Any],
    r: _Resolver,
    template_path: Path,
    samconfig_path: Path,
    env: str,
    stack_name: str,
    parameters: dict[str, str],
) -> StackSettings:
    resources = doc["Resources"]
    globals_fn = (doc.get("Globals") or {}).get("Function") or {}
    functions = {
        logical: _function(logical, res.get("Properties") or {}, globals_fn, r)
        for logical, res in resources.items()
        if res.get("Type") == "AWS::Serverless::Function"
    }
    inference_id = next((k for k, f in functions.items() if f.handler == INFERENCE_HANDLER), None)
    if inference_id is None:
        raise SettingsError(f"{template_path}: no function has Handler {INFERENCE_HANDLER}")
    fn_props = resources[inference_id].get("Properties") or {}

    api_id, routes = None, []
    for event_name, event in (fn_props.get("Events") or {}).items():
        if event.get("Type") != "Api":
            continue
        props = event.get("Properties") or {}
        api_ref = props.get("RestApiId")
        event_api = api_ref.get("Ref") if isinstance(api_ref, dict) else None
        if api_id is not None and event_api != api_id:
            raise SettingsError(f"{template_path}: {inference_id} events use more than one API")
        api_id = event_api
        routes.append((event_name, props))
    if not routes:
        raise SettingsError(f"{template_path}: {inference_id} has no Api event")
    api_props = (resources.get(api_id) or {}).get("Properties") or {} if api_id else {}
    api_auth = api_props.get("Auth") or {}
    api_key_required = bool(r.resolve(api_auth.get("ApiKeyRequired", False)))
    route_list = tuple(
        Route(
            method=str(r.resolve(props["Method"])).upper(),
            path="/" + str(r.resolve(props["Path"])).strip("/"),
            api_key_required=bool(
                r.resolve((props.get("Auth") or {}).get("ApiKeyRequired", api_key_required))
            ),
        )
        for _, props in routes
    )

    cors = None
    cors_spec = api_props.get("Cors")
    if cors_spec is not None:
        if not isinstance(cors_spec, dict):  # the short form is the AllowOrigin alone
            cors_spec = {"AllowOrigin": cors_spec}
        resolved = r.resolve(cors_spec)
        cors = Cors(
            allow_origin=_unquote(resolved.get("AllowOrigin", "'*'")),
            allow_headers=_unquote(resolved["AllowHeaders"]) if "AllowHeaders" in resolved else None,
            allow_methods=_unquote(resolved["AllowMethods"]) if "AllowMethods" in resolved else None,
            max_age=_unquote(resolved["MaxAge"]) if "MaxAge" in resolved else None,
            preflight_needs_key=bool(api_auth.get("AddApiKeyRequiredToCorsPreflight", True)),
        )

    gateway_headers: dict[str, Mapping[str, str]] = {}
    for kind, spec in (r.resolve(api_props.get("GatewayResponses") or {})).items():
        headers = ((spec or {}).get("ResponseParameters") or {}).get("Headers") or {}
        gateway_headers[kind] = MappingProxyType({k: _unquote(v) for k, v in headers.items()})

    plans, default_plan = _plans(resources, r, api_id, parameters, template_path)
    default = plans[default_plan] if default_plan else None
    quota_limit = default.quota_limit if default else None
    quota_period = default.quota_period if default else "MONTH"
    quota_offset = default.quota_offset if default else 0
    rate = default.rate_limit if default else None
    burst = default.burst_limit if default else None

    preference = fn_props.get("DeploymentPreference") or {}
    deployment_type = str(r.resolve(preference.get("Type", "AllAtOnce")))
    shift = _SHIFT.match(deployment_type)
    if deployment_type == "AllAtOnce":
        traffic_shift, percent, minutes = "all_at_once", 100, 0
    elif shift:
        traffic_shift, percent, minutes = shift.group(1).lower(), int(shift.group(2)), int(shift.group(3))
    else:
        raise SettingsError(
            f"{template_path}: DeploymentPreference.Type {deployment_type!r} is not a SAM type"
        )
    alarms = tuple(
        _alarm(ref["Ref"], resources, r, template_path)
        for ref in preference.get("Alarms") or []
        if isinstance(ref, dict) and "Ref" in ref
    )
    hook_ref = (preference.get("Hooks") or {}).get("PreTraffic")
    hook = hook_ref.get("Ref") if isinstance(hook_ref, dict) else None

    return StackSettings(
        template_path=template_path,
        samconfig_path=samconfig_path,
        samconfig_env=env,
        parameters=MappingProxyType(dict(parameters)),
        stack_name=stack_name,
        region=r.pseudo["AWS::Region"],
        environment=parameters.get("Environment", env),
        model_version=functions[inference_id].environment.get(
            "MODEL_VERSION", parameters.get("ModelVersion", "")
        ),
        model_versions=tuple(
            str(v)
            for v in ((doc.get("Parameters") or {}).get("ModelVersion") or {}).get("AllowedValues") or ()
        ),
        api_name=str(r.resolve(api_props.get("Name", api_id or "api"))),
        stage_name=str(r.resolve(api_props.get("StageName", "Prod"))),
        routes=route_list,
        cors=cors,
        gateway_response_headers=MappingProxyType(gateway_headers),
        api_key_required=api_key_required,
        quota_limit=quota_limit,
        quota_period=quota_period,
        quota_offset=quota_offset,
        rate_limit=rate,
        burst_limit=burst,
        inference=functions[inference_id],
        functions=MappingProxyType(functions),
        deployment_type=deployment_type,
        traffic_shift=traffic_shift,
        canary_percent=percent,
        interval_minutes=minutes,
        alarms=alarms,
        pre_traffic_hook=hook,
        latency_slo_ms=float(parameters.get("LatencySloMs", "100")),
        max_text_chars=int(float(functions[inference_id].environment.get("MAX_TEXT_CHARS", "5000"))),
        conditions=MappingProxyType({name: r.condition(name) for name in doc.get("Conditions") or {}}),
        plans=MappingProxyType(plans),
        default_plan=default_plan,
    )


def _plans(
    resources: dict[str, Any],
    r: _Resolver,
    api_id: str | None,
    parameters: dict[str, str],
    template_path: Path,
) -> tuple[dict[str, PlanSettings], str | None]:
    """The API's usage plans by name, and the name of the one the stack's API key is on (its
    UsagePlanKey's; the first plan when no key names one)."""
    prefix = f"{parameters.get('AppName', '')}-{parameters.get('Environment', '')}-"
    plans: dict[str, PlanSettings] = {}
    for logical, res in resources.items():
        if res.get("Type") != "AWS::ApiGateway::UsagePlan":
            continue
        raw_stages = (res.get("Properties") or {}).get("ApiStages") or []
        if api_id and raw_stages and not any(s.get("ApiId") == {"Ref": api_id} for s in raw_stages):
            continue  # a plan for another API
        props = r.resolve(res.get("Properties") or {})
        quota, throttle = props.get("Quota") or {}, props.get("Throttle") or {}
        period = str(quota.get("Period", "MONTH")).upper()
        if period not in _PERIOD_SECONDS:
            raise SettingsError(
                f"{template_path}: usage plan {logical} Quota.Period {period!r} is not DAY, WEEK or MONTH"
            )
        full_name = str(props.get("UsagePlanName", logical))
        name = full_name[len(prefix) :] if full_name.startswith(prefix) else full_name
        methods = {
            str(method): (float(limits["RateLimit"]), int(float(limits.get("BurstLimit", 1))))
            for stage in props.get("ApiStages") or []
            for method, limits in (stage.get("Throttle") or {}).items()
            if "RateLimit" in (limits or {})
        }
        plans[name] = PlanSettings(
            name=name,
            logical_id=logical,
            quota_limit=int(float(quota["Limit"])) if "Limit" in quota else None,
            quota_period=period,
            quota_offset=int(quota.get("Offset", 0)),
            rate_limit=float(throttle["RateLimit"]) if "RateLimit" in throttle else None,
            burst_limit=int(float(throttle["BurstLimit"])) if "BurstLimit" in throttle else None,
            method_throttles=MappingProxyType(methods),
        )
    by_logical = {plan.logical_id: name for name, plan in plans.items()}
    default = next(
        (
            by_logical[ref["Ref"]]
            for res in resources.values()
            if res.get("Type") == "AWS::ApiGateway::UsagePlanKey"
            and isinstance(ref := (res.get("Properties") or {}).get("UsagePlanId"), dict)
            and ref.get("Ref") in by_logical
        ),
        next(iter(plans), None),
    )
    return plans, default


def _function(
    logical: str, props: dict[str, Any], globals_fn: dict[str, Any], r: _Resolver
) -> FunctionSettings:
    variables = {
        **((globals_fn.get("Environment") or {}).get("Variables") or {}),
        **((props.get("Environment") or {}).get("Variables") or {}),
    }
    environment = {}
    for key, value in variables.items():
        resolved = r.resolve(value)
        if resolved is not None:
            environment[key] = str(resolved).lower() if isinstance(resolved, bool) else str(resolved)
    alias = props.get("AutoPublishAlias", globals_fn.get("AutoPublishAlias"))
    return FunctionSettings(
        logical_id=logical,
        name=str(r.resolve(props.get("FunctionName", logical))),
        handler=str(r.resolve(props.get("Handler", globals_fn.get("Handler", "")))),
        runtime=str(r.resolve(props.get("Runtime", globals_fn.get("Runtime", "")))),
        memory_mb=int(r.resolve(props.get("MemorySize", globals_fn.get("MemorySize", 128)))),
        timeout_s=float(r.resolve(props.get("Timeout", globals_fn.get("Timeout", 3)))),
        environment=MappingProxyType(environment),
        alias=None if alias is None else str(r.resolve(alias)),
    )


def _alarm(logical: str, resources: dict[str, Any], r: _Resolver, template_path: Path) -> AlarmSettings:
    resource = resources.get(logical)
    if resource is None or resource.get("Type") != "AWS::CloudWatch::Alarm":
        raise SettingsError(
            f"{template_path}: DeploymentPreference alarm {logical} is no AWS::CloudWatch::Alarm"
        )
    props = r.resolve(resource.get("Properties") or {})
    evaluation_periods = int(props.get("EvaluationPeriods", 1))
    return AlarmSettings(
        logical_id=logical,
        name=str(props.get("AlarmName", logical)),
        namespace=str(props.get("Namespace", "")),
        metric=str(props.get("MetricName", "")),
        statistic=str(props.get("Statistic") or props.get("ExtendedStatistic") or ""),
        threshold=float(props.get("Threshold", 0)),
        comparison=str(props.get("ComparisonOperator", "")),
        period_s=int(props.get("Period", 60)),
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=int(props.get("DatapointsToAlarm", evaluation_periods)),
        treat_missing_data=str(props.get("TreatMissingData", "missing")),
        dimensions=MappingProxyType({str(d["Name"]): str(d["Value"]) for d in props.get("Dimensions") or []}),
    )


def _unquote(value: Any) -> str:
    """SAM's Cors and GatewayResponses values are quoted string literals ("'*'"): strip the quotes."""
    text = str(value)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text
