"""The local stack's consumers: API keys on the template's usage plans, each limited on its own.

One JSON file holds them (reports/local/consumers.json by default), written only by the consumer
commands (`make consumer-add ENV=local ...`, deploy/consumers.py) through `LocalApiGateway`, the
stand-in for the boto3 API Gateway client those commands use against AWS. A key's value is never
stored: only its SHA-256, so the value is shown once, when the key is made.

The running gateway (`serve`) reads the file through `KeyRegistry`, which notices a new version of
it on the next request, and enforces each key's plan as API Gateway does: a token bucket per key
(and per key and method where the plan sets method throttling) -> 429 {"message": "Too Many
Requests"}, and a quota per key per period -> 429 {"message": "Limit Exceeded"}. The registry
writes what each key used this period to a file beside the store (consumers.usage.json), which
`get_usage` (`make consumer-list ENV=local`) reads and a restarted `serve` continues from.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from emulator.gateway import KeyLimits, api_key_id, generate_api_key
from emulator.local_aws import LocalCloudFormation, client_error
from stack import ROOT, PlanSettings, StackSettings

DEFAULT_STORE = ROOT / "reports" / "local" / "consumers.json"
USAGE_WRITE_INTERVAL_S = 0.5  # how stale the usage file may be while requests flow


def usage_path(store: Path) -> Path:
    """Where the gateway writes each key's usage, beside the store."""
    return store.with_name(store.stem + ".usage.json")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _write_json(path: Path, data: Any) -> None:
    """Atomically (a reader sees the old file or the new one, never half of one), owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ConsumerStore:
    """The JSON file of keys: {"keys": [{id, name, description, enabled, created, value_sha256,
    plan_id, tags}]}; read-modify-write under a lock file so two commands never lose a change."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: not a consumer store ({exc})") from None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list):
            raise ValueError(f"{self.path}: not a consumer store (no keys list)")
        return keys

    @contextlib.contextmanager
    def update(self) -> Iterator[list[dict[str, Any]]]:
        """The keys, to change in place; written back when the block ends without an error."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "a+", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = self.read()
            yield keys
            _write_json(self.path, {"keys": keys})


# ----------------------------------------------------------------------------- the AWS stand-ins


class LocalApiGateway:
    """The API Gateway client calls deploy/consumers.py makes, over the local stack's store and the
    template's plans (a plan's id is its name). Errors are the ClientErrors API Gateway answers."""

    def __init__(self, settings: StackSettings, store: ConsumerStore) -> None:
        self.settings = settings
        self.store = store
        self.meta = SimpleNamespace(region_name=settings.region)

    def _plan(self, operation: str, plan_id: str) -> PlanSettings:
        plan = self.settings.plans.get(plan_id)
        if plan is None:
            raise client_error(
                operation, "NotFoundException", f"Invalid Usage Plan ID specified: {plan_id}", 404
            )
        return plan

    def _on_plan(self, operation: str, plan_id: str) -> tuple[PlanSettings, list[dict[str, Any]]]:
        """The plan (NotFoundException when the template has no such plan) and the keys on it."""
        plan = self._plan(operation, plan_id)
        return plan, [k for k in self.store.read() if k.get("plan_id") == plan_id]

    @staticmethod
    def _key(operation: str, keys: list[dict[str, Any]], key_id: str) -> dict[str, Any]:
        for key in keys:
            if key["id"] == key_id:
                return key
        raise client_error(operation, "NotFoundException", "Invalid API Key identifier specified", 404)

    @staticmethod
    def _public(key: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": key["id"],
            "name": key["name"],
            "description": key.get("description", ""),
            "enabled": key["enabled"],
            "createdDate": datetime.fromtimestamp(key["created"], UTC),
            "tags": dict(key.get("tags") or {}),
        }

    def create_api_key(
        self,
        *,
        name: str,
        description: str = "",
        enabled: bool = False,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        value = generate_api_key()
        key = {
            "id": api_key_id(value),
            "name": name,
            "description": description,
            "enabled": bool(enabled),
            "created": time.time(),
            "value_sha256": _sha256(value),
            "plan_id": None,
            "tags": dict(tags or {}),
        }
        with self.store.update() as keys:
            keys.append(key)
        return {**self._public(key), "value": value}

    def delete_api_key(self, *, apiKey: str) -> dict[str, Any]:
        with self.store.update() as keys:
            keys.remove(self._key("DeleteApiKey", keys, apiKey))
        return {}

    def get_api_keys(
        self, *, nameQuery: str = "", includeValues: bool = False, limit: int = 500
    ) -> dict[str, Any]:
        items = [self._public(k) for k in self.store.read() if k["name"].startswith(nameQuery)]
        return {"items": items}

    def update_api_key(self, *, apiKey: str, patchOperations: list[dict[str, str]]) -> dict[str, Any]:
        with self.store.update() as keys:
            key = self._key("UpdateApiKey", keys, apiKey)
            for op in patchOperations:
                field_name = op.get("path", "").lstrip("/")
                if op.get("op") != "replace" or field_name not in ("enabled", "description", "name"):
                    raise client_error(
                        "UpdateApiKey", "BadRequestException", f"Invalid patch path {op.get('path')}"
                    )
                value = op.get("value", "")
                key[field_name] = value.lower() == "true" if field_name == "enabled" else value
        return self._public(key)

    def tag_resource(self, *, resourceArn: str, tags: Mapping[str, str]) -> dict[str, Any]:
        key_id = resourceArn.rsplit("/apikeys/", 1)[-1]
        with self.store.update() as keys:
            self._key("TagResource", keys, key_id).setdefault("tags", {}).update(tags)
        return {}

    def get_usage_plan(self, *, usagePlanId: str) -> dict[str, Any]:
        plan = self._plan("GetUsagePlan", usagePlanId)
        answer: dict[str, Any] = {
            "id": plan.name,
            "name": f"{self.settings.name_prefix}{plan.name}",
        }
        if plan.quota_limit is not None:
            answer["quota"] = {
                "limit": plan.quota_limit,
                "offset": plan.quota_offset,
                "period": plan.quota_period,
            }
        if plan.rate_limit is not None:
            answer["throttle"] = {"rateLimit": plan.rate_limit, "burstLimit": plan.burst_limit or 0}
        return answer

    def get_usage_plan_keys(self, *, usagePlanId: str, limit: int = 500) -> dict[str, Any]:
        _, keys = self._on_plan("GetUsagePlanKeys", usagePlanId)
        return {"items": [{"id": k["id"], "type": "API_KEY", "name": k["name"]} for k in keys]}

    def create_usage_plan_key(self, *, usagePlanId: str, keyId: str, keyType: str) -> dict[str, Any]:
        self._plan("CreateUsagePlanKey", usagePlanId)
        with self.store.update() as keys:
            key = self._key("CreateUsagePlanKey", keys, keyId)
            if key.get("plan_id") is not None:
                # One stage: API Gateway allows a key on one of its plans only.
                raise client_error(
                    "CreateUsagePlanKey",
                    "ConflictException",
                    "API Key is already associated with a usage plan",
                    409,
                )
            key["plan_id"] = usagePlanId
        return {"id": keyId, "type": keyType, "name": key["name"]}

    def delete_usage_plan_key(self, *, usagePlanId: str, keyId: str) -> dict[str, Any]:
        with self.store.update() as keys:
            key = self._key("DeleteUsagePlanKey", keys, keyId)
            if key.get("plan_id") != usagePlanId:
                raise client_error("DeleteUsagePlanKey", "NotFoundException", "Invalid Usage Plan Key", 404)
            key["plan_id"] = None
        return {}

    def get_usage(
        self, *, usagePlanId: str, startDate: str, endDate: str, limit: int = 500
    ) -> dict[str, Any]:
        """Each key's use in its current quota period, as one [used, remaining] entry (API Gateway
        answers one per day; the sum is the same) when that period began before endDate."""
        plan, keys = self._on_plan("GetUsage", usagePlanId)
        start = datetime.strptime(startDate, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        end = datetime.strptime(endDate, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() + 86_400
        usage = read_usage(usage_path(self.store.path))
        items: dict[str, list[list[int]]] = {}
        for key in keys:
            entry = usage.get(key["id"]) or {}
            started = float(entry.get("period_start", -1))
            used = int(entry.get("used", 0)) if start - 31 * 86_400 < started < end else 0
            remaining = max(0, (plan.quota_limit or 0) - used)
            items[key["id"]] = [[used, remaining]]
        return {"usagePlanId": usagePlanId, "startDate": startDate, "endDate": endDate, "items": items}


# ----------------------------------------------------------------------------- the gateway's side


def read_usage(path: Path) -> dict[str, dict[str, float]]:
    """key id -> {"period_start": epoch seconds, "used": requests}; empty when unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Admission:
    """A consumer key's verdict: its id, and API Gateway's 429 message when it is over a limit."""

    key_id: str
    refusal: str | None  # None, "Too Many Requests" or "Limit Exceeded"


class KeyRegistry:
    """The consumer keys the gateway accepts besides its own, and each one's limits."""

    def __init__(
        self,
        settings: StackSettings,
        store: str | os.PathLike[str] = DEFAULT_STORE,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = ConsumerStore(store)
        self.usage_file = usage_path(self.store.path)
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, dict[str, Any]] = {}
        self._limits: dict[str, tuple[PlanSettings, KeyLimits]] = {}  # key id -> its plan and limits on it
        self._usage = read_usage(self.usage_file)
        self._dirty = False
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None

    @property
    def count(self) -> int:
        """Keys in the store that the gateway would accept (enabled and on a plan)."""
        with self._lock:
            self._reload()
            return sum(1 for k in self._by_hash.values() if self._usable(k))

    def _usable(self, key: dict[str, Any]) -> bool:
        return bool(key.get("enabled")) and key.get("plan_id") in self.settings.plans

    def _reload(self) -> None:
        """Read the store again when it changed (commands replace it: a new inode)."""
        try:
            st = os.stat(self.store.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        try:
            keys = self.store.read()
        except ValueError:
            return  # keep what was read last; the command that broke it said so
        self._stamp = stamp
        self._by_hash = {str(k.get("value_sha256")): k for k in keys if isinstance(k, dict)}

    def admit(self, values: list[str] | None, method_key: str) -> Admission | None:
        """The verdict on the x-api-key values of a request to `method_key` ("/path/METHOD"); None
        when they are not exactly one usable consumer key (API Gateway's 403 Forbidden)."""
        if not values or len(values) != 1:
            return None
        digest = _sha256(values[0])
        with self._lock:
            self._reload()
            key = self._by_hash.get(digest)
            if key is None or not self._usable(key):
                return None
            limits = self._limits_of(key)
            refusal = limits.take(method_key)
            if refusal is None and limits.quota is not None:
                self._usage[key["id"]] = {"period_start": limits.quota.start, "used": limits.quota.used}
                self._dirty = True
        return Admission(key["id"], refusal)

    def _limits_of(self, key: dict[str, Any]) -> KeyLimits:
        plan = self.settings.plans[key["plan_id"]]
        held = self._limits.get(key["id"])
        if held is None or held[0] != plan:  # new, or moved to another plan: fresh buckets
            saved = self._usage.get(key["id"])  # continues the period a restarted gateway saved
            limits = KeyLimits.for_plan(plan, self.clock, self.monotonic, saved)
            held = self._limits[key["id"]] = (plan, limits)
        return held[1]

    def flush(self) -> None:
        """Write the usage file if a key used something since it was last written."""
        with self._lock:
            if not self._dirty:
                return
            usage, self._dirty = dict(self._usage), False
        try:
            _write_json(self.usage_file, usage)
        except OSError:
            with self._lock:
                self._dirty = True  # a full disk must not fail requests: try again later

    def start(self) -> None:
        """Write the usage every USAGE_WRITE_INTERVAL_S, off the request path, until stop()."""
        if self._writer is None:
            self._stop.clear()
            self._writer = threading.Thread(target=self._run, name="consumer-usage", daemon=True)
            self._writer.start()

    def _run(self) -> None:
        while not self._stop.wait(USAGE_WRITE_INTERVAL_S):
            self.flush()

    def stop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._stop.set()
            writer.join(timeout=5)
        self.flush()


def local_clients(
    settings: StackSettings, store: str | os.PathLike[str] = DEFAULT_STORE
) -> tuple[LocalCloudFormation, LocalApiGateway]:
    """The CloudFormation and API Gateway stand-ins deploy/consumers.py uses on the local stack: the
    stack's parameters (AppName, Environment) and usage plans (a plan's physical id is its name)."""
    plans = [(p.logical_id, p.name, "AWS::ApiGateway::UsagePlan") for p in settings.plans.values()]
    cfn = LocalCloudFormation(settings.stack_name, settings.parameters, plans, settings.region)
    return cfn, LocalApiGateway(settings, ConsumerStore(store))
