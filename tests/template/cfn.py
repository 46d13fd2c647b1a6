"""template.yaml read the way CloudFormation reads it, offline.

The stack's loader (SAM's YAML parsing: it knows !Ref, !GetAtt, !Sub, !If, ...), SAM's transform run
with no AWS session, and the stack's resolver to ask what a given set of parameters would deploy.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform as sam_transform

from stack.template import load_template, parameter_values, pseudo_parameters, resolve

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
PSEUDO = pseudo_parameters(REGION, "hate-speech-test")


class NoManagedPolicyLookup:
    """Stands in for SAM's IAM-backed managed-policy loader: the template names no managed
    policy by name (SAM adds the ARNs it needs itself), so nothing needs looking up."""

    def load(self) -> dict[str, str]:
        return {}


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


def resolved(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The template's Globals, Resources and Outputs for its parameter Defaults with `overrides` over
    them: parameters, pseudo parameters, mappings, conditions, Fn::If and Fn::Sub resolved by the
    stack's one resolver (stack.template.resolve); references to resources are left as they are
    ({"Ref": X}, "${X}" in a Sub's text), for CloudFormation to fill in."""
    parameters = parameter_values(template, overrides or {}, TEMPLATE, Path("overrides"), "test")
    sections, _ = resolve(template, parameters, PSEUDO, stand_ins=False)
    return sections


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
