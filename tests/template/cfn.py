"""template.yaml read the way CloudFormation reads it, offline.

SAM's own YAML loader (it knows !Ref, !GetAtt, !Sub, !If, ...), SAM's transform run with no AWS
session, and just enough intrinsic-function evaluation to ask what a given set of parameters
would deploy: parameters, pseudo parameters, mappings, conditions, Fn::If and Fn::Sub are
resolved; references to resources are left as they are (a Sub keeps its "${Resource}" text).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform as sam_transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
PSEUDO = {
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "hate-speech-test",
    "AWS::NoValue": None,
}
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class NoManagedPolicyLookup:
    """Stands in for SAM's IAM-backed managed-policy loader: the template names no managed
    policy by name (SAM adds the ARNs it needs itself), so nothing needs looking up."""

    def load(self) -> dict[str, str]:
        return {}


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml as a dict, short-form tags turned into their Fn:: forms."""
    return yaml_parse(path.read_text(encoding="utf-8"))


def transform(parameters: dict[str, str] | None = None, code_key: str = "package") -> dict[str, Any]:
    """The CloudFormation template SAM generates, offline.

    CodeUri points at the project (sam build packages it); the transform needs an S3 URI as
    `sam deploy` would have uploaded, and `code_key` stands for that upload's content hash."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    sam = copy.deepcopy(load_template())
    fake_uri = f"s3://offline-artifacts/{code_key}.zip"
    sam.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = fake_uri
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = fake_uri
    return sam_transform(sam, dict(parameters or {}), NoManagedPolicyLookup())


def resources_of_type(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of one type."""
    return {name: res for name, res in template["Resources"].items() if res["Type"] == type_name}


class Evaluator:
    """Resolves a template's parameter-dependent parts for one set of parameter values."""

    def __init__(self, template: dict[str, Any], overrides: dict[str, str] | None = None) -> None:
        self.template = template
        declared = template.get("Parameters", {})
        self.parameters: dict[str, Any] = dict(PSEUDO)
        for name, spec in declared.items():
            if "Default" in spec:
                self.parameters[name] = str(spec["Default"])
        for name, value in (overrides or {}).items():
            if name not in declared:
                raise KeyError(f"{name} is not a parameter of the template")
            self.parameters[name] = str(value)

    def condition(self, name: str) -> bool:
        """The value of a named condition."""
        return bool(self._test(self.template["Conditions"][name]))

    def _test(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, value),) = node.items()
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in value)
                return str(left) == str(right)
            if key == "Fn::Or":
                return any(self._test(v) for v in value)
            if key == "Fn::And":
                return all(self._test(v) for v in value)
            if key == "Fn::Not":
                return not self._test(value[0])
            if key == "Condition":
                return self.condition(value)
        return self.resolve(node)

    def resolve(self, node: Any) -> Any:
        """`node` with parameters, mappings, conditions and Fn::Sub text resolved."""
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref" and value in self.parameters:
                return self.parameters[value]
            if key == "Fn::If":
                name, if_true, if_false = value
                return self.resolve(if_true if self.condition(name) else if_false)
            if key == "Fn::FindInMap":
                mapping, top, second = (self.resolve(v) for v in value)
                return self.template["Mappings"][mapping][top][second]
            if key == "Fn::Sub":
                return self._sub(value)
        return {key: self.resolve(value) for key, value in node.items()}

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
        local = {name: self.resolve(v) for name, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                bound = local[name]
                return _reference_text(bound)
            if name in self.parameters:
                return str(self.parameters[name])
            return match.group(0)  # a resource or attribute: left for CloudFormation

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


def _reference_text(value: Any) -> str:
    """A Sub variable's value as text; an unresolved resource reference keeps its name."""
    if isinstance(value, dict) and "Ref" in value:
        return "${" + value["Ref"] + "}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    return str(value)


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """Every inline policy statement of an AWS::IAM::Role."""
    found = []
    for policy in role["Properties"].get("Policies", []):
        body = policy["PolicyDocument"]["Statement"]
        found.extend(body if isinstance(body, list) else [body])
    return found


def as_list(value: Any) -> list[Any]:
    """A policy element that may be one item or a list, as a list."""
    return value if isinstance(value, list) else [value]
