"""template.yaml, checked offline: cfn-lint, and the CloudFormation that SAM's transform makes of it."""

from __future__ import annotations

import json

import pytest
from cfnlint.api import lint_file
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from tests.template.cfn import (
    REGION,
    TEMPLATE,
    as_list,
    load_template,
    resolved,
    resources_of_type,
    statements,
    transform,
)

INFER = "InferenceFunction"
HOOK = "PreTrafficHookFunction"
JUDGE = "CanaryJudgeFunction"
GATE = "PostTrafficGateFunction"
PROBE = "CanaryProbeFunction"
GATING_ALARMS = ("CanaryErrorsAlarm", "CanaryLatencyAlarm", "CanaryJudgeAlarm")  # DeploymentPreference.Alarms
LIVE_ALARMS = ("LiveErrorsAlarm", "LiveApi5xxAlarm")  # page on-call, never gate
ALARMS = GATING_ALARMS + LIVE_ALARMS
ROUTE = "/infer/hate-speech"
# Actions whose IAM authorisation takes no resource ARN, so "*" is the only possible Resource.
RESOURCELESS_ACTIONS = {"logs:GetQueryResults", "logs:StopQuery", "cloudwatch:PutMetricData"}
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda",
}


@pytest.fixture(scope="module")
def sam():
    return load_template()


@pytest.fixture(scope="module")
def prod():
    return transform({"Environment": "prod"})


def version_logical_id(cfn: dict) -> str:
    (name,) = resources_of_type(cfn, "AWS::Lambda::Version")
    return name


def test_cfn_lint_finds_nothing():
    """cfn-lint (the linter behind `sam validate --lint`) reports no error, warning or info."""
    matches = lint_file(TEMPLATE)
    assert [str(m) for m in matches] == []


@pytest.mark.parametrize("environment", ["uat", "prod"])
def test_uat_and_prod_canary_10_percent_for_5_minutes_stopped_only_by_the_new_versions_alarms(environment):
    """The deployment group shifts 10 % for 5 minutes and stops on any of the three alarms about
    the new version; the API-wide 5xx and the live alarms are not among them (a baseline 5xx, a
    throttle or the old version's errors must not roll back a good canary)."""
    cfn = transform({"Environment": environment})
    group = resolved(cfn, {"Environment": environment})["Resources"][f"{INFER}DeploymentGroup"]["Properties"]
    assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    assert group["AlarmConfiguration"]["Enabled"] is True
    assert [a["Name"] for a in group["AlarmConfiguration"]["Alarms"]] == [{"Ref": n} for n in GATING_ALARMS]
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]


def test_dev_deploys_all_at_once_through_the_same_hook_and_alarms():
    """dev skips the 5-minute wait but still runs the pre-traffic check and the alarms."""
    cfn = transform({"Environment": "dev"})
    group = resolved(cfn, {"Environment": "dev"})["Resources"][f"{INFER}DeploymentGroup"]["Properties"]
    assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert len(group["AlarmConfiguration"]["Alarms"]) == len(GATING_ALARMS)
    alias = cfn["Resources"][f"{INFER}Aliaslive"]
    assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["BeforeAllowTrafficHook"] == {"Ref": HOOK}


def test_deployment_events_reach_the_on_call_topic(prod):
    """Start, success, failure, stop and rollback of a deployment are published to on-call."""
    (trigger,) = prod["Resources"][f"{INFER}DeploymentGroup"]["Properties"]["TriggerConfigurations"]
    assert trigger["TriggerTargetArn"] == {"Ref": "OnCallTopic"}
    assert {"DeploymentFailure", "DeploymentRollback", "DeploymentSuccess"} <= set(trigger["TriggerEvents"])


def test_the_api_calls_the_live_alias_whose_update_runs_the_pretraffic_hook(prod):
    """The API integration targets alias `live`; shifting it is a CodeDeploy deployment with the hook."""
    alias = prod["Resources"][f"{INFER}Aliaslive"]
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_logical_id(prod), "Version"]}
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] == {"Ref": HOOK}
    assert update["DeploymentGroupName"] == {"Ref": f"{INFER}DeploymentGroup"}
    integration = prod["Resources"]["HateSpeechApi"]["Properties"]["Body"]["paths"][ROUTE]["post"]
    assert "${InferenceFunctionAliaslive}" in integration["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]


def test_a_model_only_change_publishes_a_new_version():
    """Changing only ModelVersion makes CloudFormation publish a new version (hence a canary).

    SAM hashes the unresolved environment, so the version keeps its logical id; its
    Description, which CloudFormation cannot update in place, is what changes."""
    v1, v2 = (transform({"Environment": "prod", "ModelVersion": m}) for m in ("v1", "v2"))
    name = version_logical_id(v1)
    assert version_logical_id(v2) == name
    descriptions = [
        resolved(t, {"ModelVersion": m})["Resources"][name]["Properties"]["Description"]
        for t, m in ((v1, "v1"), (v2, "v2"))
    ]
    assert descriptions == ["model v1, max 5000 chars", "model v2, max 5000 chars"]
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, "AWS::Lambda::Version").schema
    assert "/properties/Description" in schema["createOnlyProperties"]
    assert v1["Resources"][INFER]["Properties"]["Environment"]["Variables"]["MODEL_VERSION"] == {
        "Ref": "ModelVersion"
    }


def test_every_parameter_of_the_functions_environment_changes_the_version_description(sam):
    """Whatever parameter feeds the inference environment, changing it alone publishes a version."""
    variables = load_template()["Resources"][INFER]["Properties"]["Environment"]["Variables"]
    fed = [value["Ref"] for value in variables.values() if isinstance(value, dict) and "Ref" in value]
    assert "ModelVersion" in fed

    def description(overrides: dict[str, str]) -> str:
        return resolved(sam, overrides)["Resources"][INFER]["Properties"]["VersionDescription"]

    for name in fed:
        spec = sam["Parameters"][name]
        default = str(spec["Default"])
        other = next((v for v in spec.get("AllowedValues", []) if v != default), None) or str(
            int(default) + 1
        )
        assert description({}) != description({name: other}), name


def test_a_code_change_publishes_a_new_version_too():
    """A new package (another S3 key after `sam deploy` uploads it) gets a new version resource."""
    before = version_logical_id(transform({"Environment": "prod"}, code_key="package-a"))
    after = version_logical_id(transform({"Environment": "prod"}, code_key="package-b"))
    assert before != after


def test_the_hook_is_a_codedeploy_hook_that_is_not_itself_deployed_gradually(prod, sam):
    """The hook's name has the prefix CodeDeploy's role may invoke; it gets no alias or versions."""
    name = resolved(prod)["Resources"][HOOK]["Properties"]["FunctionName"]
    assert name.startswith("CodeDeployHook_")
    assert len(name) <= 64
    assert sam["Resources"][HOOK]["Properties"]["DeploymentPreference"] == {"Enabled": False}
    assert not [n for n in prod["Resources"] if n.startswith(HOOK) and n not in (HOOK, f"{HOOK}Role")]
    role = prod["Resources"]["CodeDeployServiceRole"]["Properties"]
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"]


def test_the_hook_may_invoke_versions_read_the_deployment_and_report_to_codedeploy(prod):
    """The hook gets the new version's qualified ARN; it may invoke qualified versions of the
    inference function only (the new one and the baseline, which only the deployment names),
    read this application's deployments (which versions) and report to them, nothing else."""
    hook = prod["Resources"][HOOK]["Properties"]
    version = version_logical_id(prod)
    assert hook["Environment"]["Variables"]["NEW_VERSION_ARN"] == {"Ref": version}
    granted = {
        action: stmt["Resource"]
        for stmt in statements(prod["Resources"][f"{HOOK}Role"])
        for action in as_list(stmt["Action"])
    }
    assert granted["lambda:InvokeFunction"] == {"Fn::Sub": "${InferenceFunction.Arn}:*"}
    for action in (
        "codedeploy:GetDeployment",
        "codedeploy:ListDeploymentTargets",
        "codedeploy:GetDeploymentTarget",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
    ):
        assert "deploymentgroup:${ServerlessDeploymentApplication}/*" in granted[action]["Fn::Sub"], action
    assert set(granted) == {
        "lambda:InvokeFunction",
        "codedeploy:GetDeployment",
        "codedeploy:ListDeploymentTargets",
        "codedeploy:GetDeploymentTarget",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
        "lambda:GetAlias",  # the alias must still serve the deployment's CurrentVersion
        "sns:Publish",  # its dead-letter queue, the on-call topic
    }


def test_usage_plan_quota_and_throttle_come_from_the_parameters(prod, sam):
    """The plan's monthly quota, rate and burst are the QuotaLimit, RateLimit and BurstLimit parameters."""
    plan = prod["Resources"]["UsagePlan"]["Properties"]
    assert plan["Quota"] == {"Limit": {"Ref": "QuotaLimit"}, "Period": "MONTH"}
    assert plan["Throttle"] == {"RateLimit": {"Ref": "RateLimit"}, "BurstLimit": {"Ref": "BurstLimit"}}
    assert [(s["ApiId"], s["Stage"]) for s in plan["ApiStages"]] == [
        ({"Ref": "HateSpeechApi"}, {"Ref": "HateSpeechApiv1Stage"})
    ]
    defaults = {
        name: sam["Parameters"][name]["Default"] for name in ("QuotaLimit", "RateLimit", "BurstLimit")
    }
    assert defaults == {"QuotaLimit": 10000, "RateLimit": 1000, "BurstLimit": 1000}
    key = prod["Resources"]["UsagePlanKey"]["Properties"]
    assert key == {"KeyId": {"Ref": "ApiKey"}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": "UsagePlan"}}


def test_the_plans_standard_and_free_are_usage_plans_of_the_stage_with_per_key_limits(prod, sam):
    """Two plans on the API's stage, named <AppName>-<Environment>-<plan> (deploy/consumers.py reads
    the plan's name so): standard (the stack's own key on it) and the smaller free tier, whose
    limits are the Free* parameters; the free plan waits for the standard one (API Gateway refuses
    concurrent changes to one stage's plans). Consumer keys go on them at run time, not here."""
    plans = {
        logical: res["Properties"]
        for logical, res in resolved(prod, {"Environment": "prod"})["Resources"].items()
        if res["Type"] == "AWS::ApiGateway::UsagePlan"
    }
    names = {p["UsagePlanName"] for p in plans.values()}
    assert names == {"hate-speech-prod-standard", "hate-speech-prod-free"}
    free = prod["Resources"]["FreeUsagePlan"]
    assert free["DependsOn"] == "UsagePlan"
    assert free["Properties"]["Quota"] == {"Limit": {"Ref": "FreeQuotaLimit"}, "Period": "MONTH"}
    assert free["Properties"]["Throttle"] == {
        "RateLimit": {"Ref": "FreeRateLimit"},
        "BurstLimit": {"Ref": "FreeBurstLimit"},
    }
    for plan in plans.values():
        assert [s["ApiId"] for s in plan["ApiStages"]] == [{"Ref": "HateSpeechApi"}]
        assert [s["Stage"] for s in plan["ApiStages"]] == [{"Ref": "HateSpeechApiv1Stage"}]
    # Method-level throttling of the batch route (a method of the stage: "<path>/<METHOD>").
    batch = {name: p["ApiStages"][0]["Throttle"] for name, p in plans.items()}
    assert batch == {
        "UsagePlan": {"/infer/hate-speech/batch/POST": {"RateLimit": 10, "BurstLimit": 20}},
        "FreeUsagePlan": {"/infer/hate-speech/batch/POST": {"RateLimit": 1, "BurstLimit": 2}},
    }
    methods = [r["Properties"] for r in prod["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    assert methods and "post" in methods[0]["Body"]["paths"]["/infer/hate-speech/batch"]
    free_params = ("FreeQuotaLimit", "FreeRateLimit", "FreeBurstLimit")
    defaults = {n: sam["Parameters"][n]["Default"] for n in free_params}
    assert defaults == {"FreeQuotaLimit": 1000, "FreeRateLimit": 5, "FreeBurstLimit": 10}
    resources = prod["Resources"].values()
    keys = [r["Properties"] for r in resources if r["Type"] == "AWS::ApiGateway::UsagePlanKey"]
    assert keys == [{"KeyId": {"Ref": "ApiKey"}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": "UsagePlan"}}]


def test_post_requires_the_api_key_and_the_cors_preflight_does_not(prod):
    """POST carries the api_key security requirement; OPTIONS (sent by browsers without it) does not."""
    api = prod["Resources"]["HateSpeechApi"]["Properties"]["Body"]
    methods = api["paths"][ROUTE]
    assert set(methods) == {"post", "options"}
    assert {"api_key": []} in methods["post"]["security"]
    assert not any("api_key" in requirement for requirement in methods["options"].get("security", []))
    assert api["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }


def test_cors_preflight_and_gateway_errors_allow_browsers_to_send_the_key(prod):
    """The preflight allows POST with Content-Type and X-Api-Key; API Gateway's own 4xx/5xx carry CORS too."""
    api = prod["Resources"]["HateSpeechApi"]["Properties"]["Body"]
    headers = api["paths"][ROUTE]["options"]["x-amazon-apigateway-integration"]["responses"]["default"][
        "responseParameters"
    ]
    assert headers["method.response.header.Access-Control-Allow-Headers"] == "'Content-Type,X-Api-Key'"
    assert headers["method.response.header.Access-Control-Allow-Methods"] == "'OPTIONS,POST'"
    gateway = api["x-amazon-apigateway-gateway-responses"]
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        assert (
            gateway[kind]["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"
        )


def test_the_only_stage_is_v1(prod):
    """One stage, `v1` (OpenApiVersion keeps SAM from adding its extra stage named "Stage")."""
    stages = resources_of_type(prod, "AWS::ApiGateway::Stage")
    assert [s["Properties"]["StageName"] for s in stages.values()] == ["v1"]


def test_no_iam_statement_allows_every_action_or_resource_without_need(prod):
    """No Action "*" or "service:*"; Resource "*" only where IAM accepts nothing narrower."""
    roles = resources_of_type(prod, "AWS::IAM::Role")
    assert set(roles) == {f"{n}Role" for n in (INFER, HOOK, JUDGE, GATE, PROBE)} | {"CodeDeployServiceRole"}
    for name, role in roles.items():
        for stmt in statements(role):
            actions = as_list(stmt["Action"])
            assert stmt["Effect"] == "Allow", name
            assert not [a for a in actions if a == "*" or a.endswith(":*")], (name, actions)
            if "*" in as_list(stmt["Resource"]):
                assert set(actions) <= RESOURCELESS_ACTIONS, (name, actions)
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            text = arn["Fn::Sub"] if isinstance(arn, dict) else arn
            assert text.replace("${AWS::Partition}", "aws") in ALLOWED_MANAGED_POLICIES, (name, arn)


def test_the_judge_may_write_its_verdict_only_into_the_project_namespace(prod, sam):
    """PutMetricData is held to the namespace the verdict alarm reads."""
    (put,) = [
        s
        for s in statements(resolved(prod)["Resources"][f"{JUDGE}Role"])
        if "cloudwatch:PutMetricData" in as_list(s["Action"])
    ]
    namespace = sam["Mappings"]["Constants"]["Metrics"]["Namespace"]
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": namespace}}


def test_the_judge_runs_every_minute_and_reads_the_inference_logs_and_alias(prod):
    """Scheduled every minute; may query the inference log group and read the alias, nothing more."""
    rule = schedule_of(prod, JUDGE)
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [JUDGE, "Arn"]}
    granted = {}
    for stmt in statements(prod["Resources"][f"{JUDGE}Role"]):
        for action in as_list(stmt["Action"]):
            granted[action] = as_list(stmt["Resource"])
    assert granted["logs:StartQuery"] == [
        {"Fn::GetAtt": ["InferenceLogGroup", "Arn"]},
        {"Fn::GetAtt": ["PreTrafficHookLogGroup", "Arn"]},
    ]
    assert {"Fn::GetAtt": [INFER, "Arn"]} in granted["lambda:GetAlias"]
    timeout = prod["Resources"][JUDGE]["Properties"]["Timeout"]
    assert timeout < 60  # two runs never overlap


def test_canary_alarms_watch_only_the_new_version_behind_live(prod):
    """Errors and p99 Duration are scoped with Resource fn:live and ExecutedVersion = the new version."""
    version = version_logical_id(prod)
    expected = [
        {"Name": "FunctionName", "Value": {"Ref": INFER}},
        {"Name": "Resource", "Value": {"Fn::Sub": "${InferenceFunction}:live"}},
        {"Name": "ExecutedVersion", "Value": {"Fn::GetAtt": [version, "Version"]}},
    ]
    for name, metric in (("CanaryErrorsAlarm", "Errors"), ("CanaryLatencyAlarm", "Duration")):
        alarm = prod["Resources"][name]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", metric)
        assert alarm["Dimensions"] == expected
    errors = prod["Resources"]["CanaryErrorsAlarm"]["Properties"]
    assert (errors["Statistic"], errors["Threshold"], errors["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )


def test_latency_alarm_compares_p99_with_the_slo_parameter(prod):
    """p99 above LatencySloMs for two minutes running (one cold start alone does not roll back)."""
    alarm = prod["Resources"]["CanaryLatencyAlarm"]["Properties"]
    assert alarm["ExtendedStatistic"] == "p99"
    assert alarm["Threshold"] == {"Ref": "LatencySloMs"}
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["Period"]) == (2, 2, 60)


def _math(alarm: dict) -> tuple[dict, str]:
    """The metric-math alarm's queries by id, and the expression it alarms on."""
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    returned = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    assert len(returned) == 1
    return queries, returned[0]["Expression"]


def test_api_5xx_alarm_pages_on_a_rate_of_the_v1_stage_with_a_minimum_count(prod):
    """API Gateway 5XXError and Count of this API's v1 stage over 5 minutes: it pages when at
    least 3 requests failed AND they are > 1 % of requests; one 5xx in a minute pages nobody."""
    resources = resolved(prod, {"Environment": "prod"})["Resources"]
    alarm = resources["LiveApi5xxAlarm"]["Properties"]
    api_name = resources["HateSpeechApi"]["Properties"]["Name"]
    queries, expression = _math(alarm)
    for query_id, metric in (("errors", "5XXError"), ("requests", "Count")):
        stat = queries[query_id]["MetricStat"]
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"]) == ("AWS/ApiGateway", metric)
        assert stat["Metric"]["Dimensions"] == [
            {"Name": "ApiName", "Value": api_name},
            {"Name": "Stage", "Value": "v1"},
        ]
        assert (stat["Period"], stat["Stat"]) == (300, "Sum")
    assert expression == "IF(errors >= 3 AND requests > 0, 100 * errors / requests, 0)"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanThreshold")


def test_live_errors_alarm_counts_every_version_behind_the_alias(prod):
    """Lambda Errors and Invocations of alias live without ExecutedVersion (whatever serves
    consumers now), the same >= 3 and > 1 % rule over 5 minutes."""
    alarm = prod["Resources"]["LiveErrorsAlarm"]["Properties"]
    queries, expression = _math(alarm)
    for query_id, metric in (("errors", "Errors"), ("invocations", "Invocations")):
        metric_def = queries[query_id]["MetricStat"]["Metric"]
        assert (metric_def["Namespace"], metric_def["MetricName"]) == ("AWS/Lambda", metric)
        assert metric_def["Dimensions"] == [
            {"Name": "FunctionName", "Value": {"Ref": INFER}},
            {"Name": "Resource", "Value": {"Fn::Sub": "${InferenceFunction}:live"}},
        ]
    assert expression == "IF(errors >= 3 AND invocations > 0, 100 * errors / invocations, 0)"


@pytest.mark.parametrize("name", GATING_ALARMS)
def test_gating_alarms_page_nobody_and_are_named_canary(prod, name):
    """A gating alarm stops the deployment (CodeDeploy's trigger tells on-call); after a promotion
    it watches the live version, so it must not page as a "canary" alarm: no AlarmActions."""
    alarm = prod["Resources"][name]["Properties"]
    assert "AlarmActions" not in alarm and "OKActions" not in alarm
    assert "-canary-" in resolved(prod, {"Environment": "prod"})["Resources"][name]["Properties"]["AlarmName"]


@pytest.mark.parametrize("name", LIVE_ALARMS)
def test_live_alarms_page_on_call_and_are_named_live(prod, name):
    """A live alarm pages (and says when it is over) and is named apart from the gating ones."""
    alarm = prod["Resources"][name]["Properties"]
    assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "OnCallTopic"}]
    assert "-live-" in resolved(prod, {"Environment": "prod"})["Resources"][name]["Properties"]["AlarmName"]


def test_judge_alarm_fires_on_a_fail_verdict_in_the_functions_namespace(prod):
    """CanaryVerdict (FunctionName = the inference function) Maximum >= 2 over 60 s, as the contract says."""
    resources = resolved(prod)["Resources"]
    alarm = resources["CanaryJudgeAlarm"]["Properties"]
    namespace = resources[INFER]["Properties"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (namespace, "CanaryVerdict")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": INFER}}]
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Maximum", 60, 2)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("name", ALARMS)
def test_every_alarm_has_a_runbook_and_a_missing_data_policy(prod, name):
    """What fired, where to look, what to do (make rollback, the one command that works while
    alarms are in ALARM) and whether it gates or pages; TreatMissingData set on purpose."""
    alarm = prod["Resources"][name]["Properties"]
    runbook = resolved(prod, {"Environment": "prod"})["Resources"][name]["Properties"]["AlarmDescription"]
    kind = "GATES DEPLOYMENTS, PAGES NOBODY." if name in GATING_ALARMS else "PAGES, NEVER GATES."
    for part in (kind, "WHAT:", "LOOK:", "ACT:", "make rollback ENV=prod"):
        assert part in runbook, part
    assert len(runbook) <= 1024  # CloudWatch's limit, with names filled in
    assert alarm["TreatMissingData"] in {"notBreaching", "breaching", "ignore", "missing"}


def test_every_published_version_survives_a_rollout(prod):
    """The generated AWS::Lambda::Version keeps DeletionPolicy Retain AND gets UpdateReplacePolicy
    Retain (CloudFormation's default on replacement is Delete): the parameter-only rollout, which
    replaces the version, keeps the previous one for `make rollback`."""
    version = prod["Resources"][version_logical_id(prod)]
    assert version["Type"] == "AWS::Lambda::Version"
    assert (version["DeletionPolicy"], version["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_the_stage_writes_a_json_access_log_with_the_key_id_never_the_key(prod):
    """Stage access log into its own log group (retention by environment): JSON with the request
    id, the consumer's apiKeyId, status and latencies; no variable carrying the key's value or
    the body."""
    stage = next(r for r in prod["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage")
    setting = stage["Properties"]["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    record = json.loads(setting["Format"])
    assert record["apiKeyId"] == "$context.identity.apiKeyId"
    assert record["requestId"] == "$context.requestId"
    assert {"status", "responseLatency", "integrationLatency"} <= set(record)
    assert not any(
        word in value
        for value in record.values()
        for word in ("apiKey}", 'identity.apiKey"', "requestBody", "body")
    )
    assert '$context.identity.apiKey"' not in setting["Format"]
    group = prod["Resources"]["ApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {
        "Fn::FindInMap": ["EnvironmentConfig", {"Ref": "Environment"}, "LogRetentionDays"]
    }


def test_functions_use_the_contract_handlers_on_python_312_built_by_make(sam, prod):
    """Handlers and runtime are the contract's; every function is built by the makefile method."""
    handlers = {
        name: prod["Resources"][name]["Properties"]["Handler"] for name in (INFER, HOOK, JUDGE, GATE, PROBE)
    }
    assert handlers == {
        INFER: "infer.app.lambda_handler",
        HOOK: "canary.hook.lambda_handler",
        JUDGE: "canary.judge_lambda.lambda_handler",
        GATE: "canary.gate.lambda_handler",
        PROBE: "canary.probe.lambda_handler",
    }
    for name in handlers:
        assert prod["Resources"][name]["Properties"]["Runtime"] == "python3.12"
        assert sam["Resources"][name]["Metadata"]["BuildMethod"] == "makefile"


def test_inference_function_reads_its_settings_from_the_parameters(prod):
    """MODEL_VERSION and MAX_TEXT_CHARS come from parameters; logs and traces never carry the request."""
    variables = prod["Resources"][INFER]["Properties"]["Environment"]["Variables"]
    assert variables["MODEL_VERSION"] == {"Ref": "ModelVersion"}
    assert variables["MAX_TEXT_CHARS"] == {"Ref": "MaxTextChars"}
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"} <= set(variables)
    assert variables["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    props = prod["Resources"][INFER]["Properties"]
    assert props["LoggingConfig"] == {"LogGroup": {"Ref": "InferenceLogGroup"}}
    assert props["TracingConfig"] == {"Mode": "Active"}


def test_model_version_only_offers_the_shipped_models(sam):
    """ModelVersion accepts exactly the models in models/ (canary.manifests.trained_versions, what the
    build ships and the rollout accepts): a new models/vN must be added to AllowedValues too,
    and a value without its folder would deploy a function that cannot load its model."""
    from canary.manifests import trained_versions

    assert sam["Parameters"]["ModelVersion"]["AllowedValues"] == list(trained_versions())
    assert sam["Parameters"]["Environment"]["AllowedValues"] == ["dev", "uat", "prod"]


def test_outputs_give_url_key_plan_alias_and_dashboard(prod):
    """The outputs a consumer and on-call need."""
    outputs = resolved(prod, {"Environment": "prod"})["Outputs"]
    assert outputs["ApiUrl"]["Value"].startswith(
        "https://${HateSpeechApi}.execute-api.us-east-1.amazonaws.com/v1"
    )
    assert outputs["ApiUrl"]["Value"].endswith(ROUTE)
    assert outputs["ApiKeyId"]["Value"] == {"Ref": "ApiKey"}
    assert outputs["UsagePlanId"]["Value"] == {"Ref": "UsagePlan"}
    assert outputs["FreeUsagePlanId"]["Value"] == {"Ref": "FreeUsagePlan"}
    assert outputs["LiveAliasArn"]["Value"] == {"Ref": f"{INFER}Aliaslive"}
    assert "#dashboards:name=${Dashboard}" in outputs["DashboardUrl"]["Value"]


def test_dashboard_shows_per_version_traffic_latency_labels_and_verdict(prod):
    """The dashboard body is valid JSON once filled in, with one widget per concern."""
    body = resolved(prod, {"Environment": "prod"})["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    widgets = json.loads(body)["widgets"]
    titles = " | ".join(w["properties"].get("title", "") for w in widgets)
    for part in (
        "Invocations per version",
        "Errors per version",
        "p50 / p99",
        "labels, model v1 (the stack's model",  # ModelVersion's default, resolved
        "labels, every model",
        "verdict",
    ):
        assert part in titles, part
    text = json.dumps(widgets)
    assert "ExecutedVersion" in text and "CanaryVerdict" in text and "Prediction" in text


def function_env(cfn: dict, name: str, fakes: dict[str, str]) -> dict[str, str]:
    """A function's environment as Lambda would see it, resource references replaced by `fakes`."""
    function = resolved(cfn, {"Environment": "prod"})["Resources"][name]["Properties"]
    env = {}
    for key, value in function["Environment"]["Variables"].items():
        if isinstance(value, dict):
            (ref,) = value.values()
            value = fakes[ref if isinstance(ref, str) else ref[0]]
        env[key] = str(value)
    return env


FAKES = {
    INFER: "hate-speech-prod-infer",
    "InferenceLogGroup": "/aws/lambda/hate-speech-prod-infer",
    "PreTrafficHookLogGroup": "/aws/lambda/CodeDeployHook_hate-speech-prod-pretraffic",
    "ServerlessDeploymentApplication": "hate-speech-prod-ServerlessDeploymentApplication-X",
}


def test_the_hook_reads_the_template_settings_it_is_given(prod):
    """canary.config.HookConfig reads the hook's environment as the template sets it."""
    from canary.config import HookConfig

    arn = "arn:aws:lambda:us-east-1:123456789012:function:hate-speech-prod-infer:7"
    env = function_env(prod, HOOK, {**FAKES, version_logical_id(prod): arn})
    config = HookConfig.from_env(env)
    assert config.new_version_arn == arn
    assert config.model_version == "v1"
    api = prod["Resources"]["HateSpeechApi"]["Properties"]["Body"]["paths"]
    assert config.api_path in api
    stage = prod["Resources"]["HateSpeechApiv1Stage"]["Properties"]["StageName"]
    assert config.api_stage == stage


def test_the_judge_reads_the_template_settings_it_is_given(prod):
    """canary.config.JudgeLambdaConfig finds the function, alias, log group and namespace the alarms use."""
    from canary.config import JudgeLambdaConfig

    config = JudgeLambdaConfig.from_env(function_env(prod, JUDGE, FAKES))
    alarm = resolved(prod)["Resources"]["CanaryJudgeAlarm"]["Properties"]
    assert (config.function_name, config.alias, config.log_group) == (
        FAKES[INFER],
        "live",
        FAKES["InferenceLogGroup"],
    )
    assert config.namespace == alarm["Namespace"]
    assert config.application == FAKES["ServerlessDeploymentApplication"]
    assert config.hook_log_group == FAKES["PreTrafficHookLogGroup"]  # the latency reference


def schedule_of(cfn: dict, function: str) -> dict:
    """The EventBridge rule that targets `function`."""
    (rule,) = [
        r
        for r in resources_of_type(cfn, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
    ]
    return rule


def granted(cfn: dict, function: str) -> dict[str, list]:
    """action -> resources of every statement of a function's role."""
    out: dict[str, list] = {}
    for stmt in statements(cfn["Resources"][f"{function}Role"]):
        for action in as_list(stmt["Action"]):
            out.setdefault(action, []).extend(as_list(stmt["Resource"]))
    return out


@pytest.mark.parametrize("environment", ["dev", "uat", "prod"])
def test_the_post_traffic_gate_is_wired_as_codedeploys_after_allow_traffic_hook(environment):
    """Every environment's alias update runs the gate after the traffic shift (AfterAllowTraffic);
    its name has the prefix the SAM-made CodeDeploy role may invoke, and it is not itself canaried."""
    cfn = transform({"Environment": environment})
    update = cfn["Resources"][f"{INFER}Aliaslive"]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["AfterAllowTrafficHook"] == {"Ref": GATE}
    assert update["BeforeAllowTrafficHook"] == {"Ref": HOOK}
    gate = resolved(cfn, {"Environment": environment})["Resources"][GATE]["Properties"]
    name = gate["FunctionName"]
    assert name.startswith("CodeDeployHook_") and len(name) <= 64
    assert load_template()["Resources"][GATE]["Properties"]["DeploymentPreference"] == {"Enabled": False}
    variables = gate["Environment"]["Variables"]
    # Only dev's AllAtOnce, which has no canary window, may pass the gate unjudged.
    assert variables["GATE_ALLOW_ALL_AT_ONCE"] == ("true" if environment == "dev" else "false")


def test_the_longest_names_still_fit_lambdas_64_characters(sam):
    """AppName's pattern allows 24 characters: the gate's CodeDeployHook_ name still fits."""
    longest = "a" * 24
    gate = resolved(sam, {"AppName": longest, "Environment": "prod"})["Resources"][GATE]["Properties"]
    name = gate["FunctionName"]
    assert len(name) <= 64


def test_the_gate_may_read_the_deployment_query_the_logs_and_report(prod):
    """CodeDeploy get/list calls and the report on this application's deployment groups only;
    Logs Insights on the inference log group and the hook's (its latency reference) only."""
    actions = granted(prod, GATE)
    group = "deploymentgroup:${ServerlessDeploymentApplication}/*"
    for action in (
        "codedeploy:GetDeployment",
        "codedeploy:ListDeploymentTargets",
        "codedeploy:GetDeploymentTarget",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
    ):
        assert [group in r["Fn::Sub"] for r in actions[action]] == [True], action
    assert actions["logs:StartQuery"] == [
        {"Fn::GetAtt": ["InferenceLogGroup", "Arn"]},
        {"Fn::GetAtt": ["PreTrafficHookLogGroup", "Arn"]},
    ]
    assert set(actions) == {
        "codedeploy:GetDeployment",
        "codedeploy:ListDeploymentTargets",
        "codedeploy:GetDeploymentTarget",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
        "logs:StartQuery",
        "logs:GetQueryResults",
        "logs:StopQuery",
        "sns:Publish",  # its dead-letter queue, the on-call topic
    }


@pytest.mark.parametrize("function", [HOOK, GATE, PROBE, JUDGE])
def test_asynchronously_invoked_functions_send_failed_events_to_on_call(prod, function):
    """The hook and gate (invoked by CodeDeploy) and the probe and judge (by the schedule) have the
    on-call topic as dead-letter queue, and their role may publish to that topic only."""
    props = prod["Resources"][function]["Properties"]
    assert props["DeadLetterConfig"] == {"TargetArn": {"Ref": "OnCallTopic"}}
    assert granted(prod, function)["sns:Publish"] == [{"Ref": "OnCallTopic"}]
    assert "DeadLetterConfig" not in prod["Resources"][INFER]["Properties"]  # synchronous: none


def test_the_gates_timeout_fits_its_wait_for_late_logs(prod):
    """Timeout (Lambda's 900 s maximum) covers the log-lag wait, the settling and the margin to
    judge and report; the wait is at least the evidence plan's longest log lag."""
    from canary.config import GateConfig
    from canary.evidence import EvidenceConfig

    props = prod["Resources"][GATE]["Properties"]
    config = GateConfig.from_env(function_env(prod, GATE, FAKES))
    assert props["Timeout"] <= 900
    assert config.max_log_lag_s >= EvidenceConfig().lag_max_s
    assert config.max_log_lag_s + config.settle_s + config.poll_s + config.time_margin_s <= props["Timeout"]
    assert config.log_group == FAKES["InferenceLogGroup"]
    assert config.hook_log_group == FAKES["PreTrafficHookLogGroup"]  # the latency reference


def test_the_hooks_log_group_is_where_the_hook_logs(prod):
    """The log group the judge and the gate read the latency reference from is the hook's own."""
    hook = prod["Resources"][HOOK]["Properties"]
    assert hook["LoggingConfig"]["LogGroup"] == {"Ref": "PreTrafficHookLogGroup"}
    for function in (JUDGE, GATE):
        env = prod["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert env["HOOK_LOG_GROUP"] == {"Ref": "PreTrafficHookLogGroup"}, function


def test_the_probe_runs_every_minute_and_may_invoke_only_the_inference_functions_versions(prod):
    """Scheduled every minute, under a minute long; it may invoke qualified ARNs of the inference
    function (function:<version>), never the unqualified function ($LATEST) nor anything else,
    and read the alias; nothing more."""
    rule = schedule_of(prod, PROBE)
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert prod["Resources"][PROBE]["Properties"]["Timeout"] < 60
    actions = granted(prod, PROBE)
    assert actions["lambda:InvokeFunction"] == [{"Fn::Sub": "${InferenceFunction.Arn}:*"}]
    assert {"Fn::GetAtt": [INFER, "Arn"]} not in actions["lambda:InvokeFunction"]
    assert set(actions) == {"lambda:InvokeFunction", "lambda:GetAlias", "sns:Publish"}


def test_the_probe_reads_the_template_settings_it_is_given(prod):
    """canary.config.ProbeConfig finds the function, alias and the API's route and stage; its run
    fits its timeout."""
    from canary.config import ProbeConfig

    config = ProbeConfig.from_env(function_env(prod, PROBE, FAKES))
    assert (config.function_name, config.alias) == (FAKES[INFER], "live")
    assert config.api_path in prod["Resources"]["HateSpeechApi"]["Properties"]["Body"]["paths"]
    assert config.run_seconds + config.time_margin_s <= prod["Resources"][PROBE]["Properties"]["Timeout"]


def test_the_judge_may_date_the_canary_from_codedeploy(prod):
    """The judge reads the running deployment (list and get calls) of this application only."""
    actions = granted(prod, JUDGE)
    for action in (
        "codedeploy:ListDeploymentGroups",
        "codedeploy:ListDeployments",
        "codedeploy:GetDeploymentTarget",
    ):
        assert all("${ServerlessDeploymentApplication}" in r["Fn::Sub"] for r in actions[action]), action
    variables = prod["Resources"][JUDGE]["Properties"]["Environment"]["Variables"]
    assert variables["CODEDEPLOY_APPLICATION"] == {"Ref": "ServerlessDeploymentApplication"}


def test_the_power_reasoning_sits_beside_the_deployment_preference():
    """The comment next to DeploymentPreference cites canary.evidence.plan() and its numbers."""
    from canary.evidence import plan, scheduled_rate

    text = TEMPLATE.read_text(encoding="utf-8")
    comment = text[
        text.index("# The canary's length and the probe rate") : text.index(
            "DeploymentPreference:\n        Type"
        )
    ]
    p = plan()
    assert "canary.evidence.plan()" in comment
    assert f"{p.errors_min_requests:,}" in comment and f"{p.probe_rps:g} texts/s" in comment
    assert f"{scheduled_rate():g} texts/s" in comment and "scheduled_rate()" in comment


def test_the_verdict_alarm_ignores_missing_data_because_the_gate_judges_by_itself(prod):
    """A crashed judge publishes nothing: notBreaching is safe only because the PostTraffic gate
    judges the whole window itself, and the runbook says so."""
    alarm = prod["Resources"]["CanaryJudgeAlarm"]["Properties"]
    runbook = resolved(prod, {"Environment": "prod"})["Resources"]["CanaryJudgeAlarm"]["Properties"][
        "AlarmDescription"
    ]
    assert alarm["TreatMissingData"] == "notBreaching"
    assert "PostTraffic gate" in runbook and "crashed" in runbook
    update = prod["Resources"][f"{INFER}Aliaslive"]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["AfterAllowTrafficHook"] == {"Ref": GATE}
