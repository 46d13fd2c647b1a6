"""One reader of the deployed stack: template.yaml and samconfig.toml, read once, answered in types.

stack.load_settings(env="prod")      every typed answer for one samconfig environment
stack.read_samconfig(path, env)      that environment's stack name, region, parameter overrides
stack.allowed_model_versions()       the models the template lets a stack serve
stack.plan_for("Canary10Percent5Minutes")   a deployment preference's plan of traffic steps
"""

from stack.deployment import Plan, Step, plan_for
from stack.errors import SettingsError
from stack.samconfig import (
    DEFAULT_SAMCONFIG,
    LOCAL_ENV,
    SamconfigEnv,
    deployable_environments,
    read_samconfig,
)
from stack.settings import (
    INFERENCE_HANDLER,
    AlarmSettings,
    Cors,
    FunctionSettings,
    PlanSettings,
    Route,
    StackSettings,
    allowed_model_versions,
    load_settings,
    name_prefix,
)
from stack.template import DEFAULT_TEMPLATE, LOCAL_ACCOUNT, ROOT, load_template

__all__ = [
    "DEFAULT_SAMCONFIG",
    "DEFAULT_TEMPLATE",
    "INFERENCE_HANDLER",
    "LOCAL_ACCOUNT",
    "LOCAL_ENV",
    "ROOT",
    "AlarmSettings",
    "Cors",
    "FunctionSettings",
    "Plan",
    "PlanSettings",
    "Route",
    "SamconfigEnv",
    "SettingsError",
    "StackSettings",
    "Step",
    "allowed_model_versions",
    "deployable_environments",
    "load_settings",
    "name_prefix",
    "load_template",
    "plan_for",
    "read_samconfig",
]
