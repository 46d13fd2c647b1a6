"""template.yaml read with SAM's own YAML loader, its parameters set for one environment, and its
intrinsic functions resolved through SAM CLI's resolver (the one place that touches that internal API).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from samtranslator.yaml_helper import yaml_parse

from stack.errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "template.yaml"
LOCAL_ACCOUNT = "123456789012"
# Names of the physical resource a Ref stands for, in the order they are looked up.
_NAME_PROPERTIES = ("FunctionName", "AlarmName", "LogGroupName", "TopicName", "Name", "UsagePlanName")
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def load_template(path: str | os.PathLike[str] = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """A CloudFormation/SAM template as a dict, short-form tags (!Ref, !Sub, ...) in their long forms
    ({"Ref": ...}, {"Fn::Sub": ...}), read by samtranslator's loader as `sam` reads it."""
    try:
        template = yaml_parse(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the template ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise SettingsError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return template


def parameter_values(
    doc: Mapping[str, Any], overrides: Mapping[str, str], template: Path, samconfig: Path, env: str
) -> dict[str, str]:
    """Every Parameter's value: samconfig's override, else its Default, checked against the
    parameter's AllowedValues, MinValue/MaxValue and AllowedPattern as CloudFormation checks them."""
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
        _check_parameter(spec, value, where)
        values[name] = value
    return values


def _check_parameter(spec: Mapping[str, Any], value: str, where: str) -> None:
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


def pseudo_parameters(region: str, stack_name: str) -> dict[str, str]:
    """AWS::* pseudo parameters of a local stack: a fixed account, the given region and stack name."""
    return {
        "AWS::Region": region,
        "AWS::AccountId": LOCAL_ACCOUNT,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{LOCAL_ACCOUNT}:stack/{stack_name}/local",
    }


def resolve(
    doc: Mapping[str, Any],
    parameters: Mapping[str, str],
    pseudo: Mapping[str, str],
    *,
    stand_ins: bool = True,
) -> tuple[dict[str, Any], dict[str, bool]]:
    """(the template's Globals, Resources and Outputs with every intrinsic resolved, each Condition's
    value) for these parameter and pseudo-parameter values. With stand_ins=False, references to
    resources stay as they are ({"Ref": X}, {"Fn::GetAtt": [X, A]}, "${X}" in a Sub's text), as the
    template tests read SAM's transformed template.

    SAM CLI's IntrinsicResolver (samcli.lib.intrinsic_resolver, `sam local`'s own) walks the template
    and evaluates Ref, GetAtt, Join, Select, FindInMap, Equals, And, Or, Not. It is internal API (no
    stability promise across aws-sam-cli releases; the dev dependency is pinned), so this is the only
    function that touches it. Its gaps, filled here:
    - Ref/GetAtt of a resource: SAM CLI answers the logical id or an ARN built from the raw (unresolved)
      FunctionName; the local stack wants the resource's physical name (its FunctionName, AlarmName,
      LogGroupName, ... resolved), and "<name>.<Attribute>" for any attribute. A resource the template
      does not declare (SAM generates it: ServerlessDeploymentApplication) stands for its own id.
    - Fn::Sub: SAM CLI looks a Sub variable's VALUE up as a symbol and ignores "${!Literal}"; here a
      variable's value is used as it is, and "${!x}" gives "${x}", as CloudFormation does.
    - Fn::If: SAM CLI resolves both branches first; here only the chosen one is, so the other may use
      what this environment lacks.
    - Conditions naming other conditions ({"Condition": Name}): evaluated here, with a cycle check.
    """
    from samcli.lib.intrinsic_resolver.intrinsic_property_resolver import IntrinsicResolver
    from samcli.lib.intrinsic_resolver.intrinsics_symbol_table import IntrinsicsSymbolTable

    symbols = _Symbols(doc["Resources"], parameters, pseudo, stand_ins)

    class StandIns(IntrinsicsSymbolTable):
        """SAM CLI's symbol table answering with _Symbols (its own would answer ARNs and logical ids)."""

        def resolve_symbols(
            self, logical_id: str, resource_attribute: str, ignore_errors: bool = False
        ) -> Any:
            return symbols.symbol(logical_id, resource_attribute)

    resolver = IntrinsicResolver(template={"Mappings": doc.get("Mappings") or {}}, symbol_resolver=StandIns())
    symbols.value = lambda node: resolver.intrinsic_property_resolver(node, ignore_errors=False)
    conditions = _Conditions(doc.get("Conditions") or {}, symbols.value)
    resolver.intrinsic_key_function_map[IntrinsicResolver.FN_SUB] = lambda arg, _: _substitute(arg, symbols)
    resolver.conditional_key_function_map[IntrinsicResolver.FN_IF] = lambda arg, _: symbols.value(
        arg[1] if conditions(arg[0]) else arg[2]
    )
    # A {"Condition": Name} reference is only an intrinsic inside Conditions (elsewhere "Condition" is
    # a resource attribute or an IAM statement's key), so it is known only while conditions evaluate.
    resolver.conditional_key_function_map["Condition"] = lambda name, _: conditions(name)
    evaluated = {name: conditions(name) for name in conditions.declared}
    del resolver.conditional_key_function_map["Condition"]
    sections = ("Globals", "Resources", "Outputs")
    return {section: symbols.value(doc[section]) for section in sections if doc.get(section)}, evaluated


class _Symbols:
    """What a Ref or GetAtt names: a parameter's or pseudo parameter's value, else a resource's
    stand-in (or the reference itself when stand_ins is off). `value` resolves a node (resolve sets it)."""

    def __init__(
        self,
        resources: Mapping[str, Any],
        parameters: Mapping[str, str],
        pseudo: Mapping[str, str],
        stand_ins: bool,
    ) -> None:
        self.resources, self.parameters, self.pseudo, self.stand_ins = (
            resources,
            parameters,
            pseudo,
            stand_ins,
        )
        self.names: dict[str, str] = {}  # logical id -> physical name, resolved on first use
        self.value: Callable[[Any], Any] = lambda node: node

    def symbol(self, logical_id: str, attribute: str) -> Any:
        """Ref (attribute "Ref") or GetAtt of `logical_id`."""
        if attribute == "Ref" and logical_id in self.parameters:
            return self.parameters[logical_id]
        if attribute == "Ref" and logical_id in self.pseudo:
            return self.pseudo[logical_id]
        if logical_id == "AWS::NoValue":
            return None
        if not self.stand_ins:
            return {"Ref": logical_id} if attribute == "Ref" else {"Fn::GetAtt": [logical_id, attribute]}
        logical, _, ref_attribute = logical_id.partition(".")  # SAM's !Ref Function.Version
        attribute = ref_attribute or ("" if attribute == "Ref" else attribute)
        return f"{self.physical_name(logical)}.{attribute}" if attribute else self.physical_name(logical)

    def physical_name(self, logical: str) -> str:
        """The resource's name property resolved (FunctionName, AlarmName, ...), else its logical id."""
        if logical not in self.names:
            props = (self.resources.get(logical) or {}).get("Properties") or {}
            key = next((k for k in _NAME_PROPERTIES if k in props), None)
            self.names[logical] = logical if key is None else str(self.value(props[key]))
        return self.names[logical]


class _Conditions:
    """The template's Conditions, each evaluated once on first use, with a cycle check."""

    def __init__(self, declared: Mapping[str, Any], value: Callable[[Any], Any]) -> None:
        self.declared, self.value = declared, value
        self.known: dict[str, bool] = {}
        self.evaluating: set[str] = set()

    def __call__(self, name: str) -> bool:
        if name not in self.known:
            if name not in self.declared:
                raise SettingsError(f"the template uses condition {name} but does not define it")
            if name in self.evaluating:
                raise SettingsError(f"condition {name} refers to itself")
            self.evaluating.add(name)
            self.known[name] = bool(self.value(self.declared[name]))
            self.evaluating.discard(name)
        return self.known[name]


def _substitute(arg: Any, symbols: _Symbols) -> str:
    """Fn::Sub as CloudFormation does it: the Sub's own variables by value, other names as Ref/GetAtt,
    "${!x}" left as "${x}"."""
    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] or {})
    bound = {k: symbols.value(v) for k, v in variables.items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in bound:
            return _sub_text(bound[name])
        logical, _, attribute = name.partition(".")
        return _sub_text(symbols.symbol(logical, attribute or "Ref"))

    return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")


def _sub_text(value: Any) -> str:
    """A value as Fn::Sub writes it into its text; a reference kept unresolved stays "${X}" / "${X.A}"."""
    if isinstance(value, dict) and "Ref" in value:
        return "${" + str(value["Ref"]) + "}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    return str(value)
