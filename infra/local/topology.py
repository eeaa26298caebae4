"""infra/topology.yaml as typed objects: the one declaration of the cloud wiring.

Both the local cloud (``infra.local.cloud``) and the cloud deployment are built
from what ``load_topology`` returns, so a topic, bucket, notification or
function declared once in the YAML exists in both.

``${project}`` in any string is replaced by the project id. Every reference is
checked (a notification's bucket, each topic named by a notification, function,
subscription or schedule), so a typo fails here rather than as a silent gap in
the wiring.

    topology = load_topology("fast-render-local")
    topology.buckets["staging"]            # "fast-render-local-staging"
    topology.firestore.database            # "(default)"
    topology.firestore.collections         # {"jobs": "One document per job...", ...}
    [f.target for f in topology.functions]
    topology.http_function("status").target  # "status_api": called over HTTP, no topic
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "topology.yaml"

# Pub/Sub rejects topic and subscription ids shorter than this.
_MIN_ID_LENGTH = 3
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


class TopologyError(ValueError):
    """The topology file is malformed or refers to something it does not declare."""


@dataclass(frozen=True)
class Notification:
    """A GCS -> Pub/Sub notification config: one bucket, an optional prefix, some event types."""

    bucket: str  # the bucket's name (the YAML's key is resolved)
    prefix: str
    events: tuple[str, ...]  # GCS event types, e.g. ("OBJECT_FINALIZE",)
    topic: str

    def matches(self, bucket: str, object_name: str, event_type: str) -> bool:
        """Whether GCS would send this object event through this config."""
        return bucket == self.bucket and object_name.startswith(self.prefix) and event_type in self.events


@dataclass(frozen=True)
class Function:
    """A Cloud Function (gen2): a functions-framework target in main.py, pushed to from its topic."""

    name: str
    target: str
    topic: str

    @property
    def push_subscription(self) -> str:
        """The id of the push subscription that triggers it, locally and in the cloud (infra/terraform)."""
        return f"{self.name}-trigger"


@dataclass(frozen=True)
class HttpFunction:
    """A Cloud Function (gen2) called over HTTP, by people and tools: a functions-framework target in main.py.

    No topic triggers it. In the cloud its URL is
    ``https://REGION-PROJECT.cloudfunctions.net/NAME`` and it is deployed without
    unauthenticated access; locally it is served at ``http://127.0.0.1:PORT/NAME``.
    """

    name: str
    target: str


@dataclass(frozen=True)
class Subscription:
    """A pull subscription for a consumer outside the system."""

    name: str
    topic: str


@dataclass(frozen=True)
class Schedule:
    """A Cloud Scheduler job that publishes to a topic every ``every_s`` seconds."""

    name: str
    topic: str
    every_s: float


@dataclass(frozen=True)
class PushDelivery:
    """How the functions' push subscriptions deliver: deadline, retry backoff, dead letters.

    A function that raises answers 500; Pub/Sub then redelivers after a backoff
    between ``min_backoff_s`` and ``max_backoff_s``, and after
    ``max_delivery_attempts`` moves the message to ``dead_letter_topic`` (whose
    pull subscription ``dead_letter_subscription`` lets a person look at it).
    Optional in the YAML (``push_delivery:``); these defaults apply otherwise.
    """

    ack_deadline_s: int = 600  # Eventarc's; also the emulator's maximum
    min_backoff_s: float = 1.0
    max_backoff_s: float = 10.0
    max_delivery_attempts: int = 5  # Pub/Sub's minimum is 5
    dead_letter_topic: str = "dead-letters"
    dead_letter_subscription: str = "dead-letters-main"


@dataclass(frozen=True)
class Firestore:
    """The Firestore (native mode) database the product keeps its state in, and its collections.

    Optional in the YAML (``firestore:``); without it, the default database and no collections.
    """

    database: str = "(default)"
    collections: dict[str, str] = field(default_factory=dict)  # collection id -> what its documents are


@dataclass(frozen=True)
class Topology:
    """Everything topology.yaml declares, for one project."""

    project: str
    buckets: dict[str, str]  # key ("staging", "output") -> bucket name
    topics: dict[str, str]  # topic id -> what it carries
    notifications: tuple[Notification, ...]
    functions: tuple[Function, ...]
    subscriptions: tuple[Subscription, ...]
    schedules: tuple[Schedule, ...]
    push_delivery: PushDelivery
    firestore: Firestore = field(default_factory=Firestore)
    http_functions: tuple[HttpFunction, ...] = ()

    @property
    def function_names(self) -> tuple[str, ...]:
        """Every function's name, one process each locally: the event functions', then the HTTP ones'."""
        return (*(f.name for f in self.functions), *(f.name for f in self.http_functions))

    @property
    def all_topics(self) -> tuple[str, ...]:
        """Every topic to create: the declared ones and the dead-letter topic."""
        return tuple(dict.fromkeys((*self.topics, self.push_delivery.dead_letter_topic)))

    @property
    def pull_subscriptions(self) -> tuple[Subscription, ...]:
        """The declared pull subscriptions and the dead-letter topic's."""
        delivery = self.push_delivery
        return (*self.subscriptions, Subscription(delivery.dead_letter_subscription, delivery.dead_letter_topic))

    def function(self, name: str) -> Function:
        """The function declared as ``name`` (KeyError if none)."""
        for function in self.functions:
            if function.name == name:
                return function
        raise KeyError(name)

    def http_function(self, name: str) -> HttpFunction:
        """The HTTP function declared as ``name`` (KeyError if none)."""
        for function in self.http_functions:
            if function.name == name:
                return function
        raise KeyError(name)


def load_topology(project: str, path: Path = DEFAULT_PATH) -> Topology:
    """Read ``path``, replace ``${project}``, check every reference, and return it typed."""
    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise TopologyError(f"{path}: expected a mapping at the top level")
    doc = _substitute(raw, {"project": project})
    buckets = {str(key): str(name) for key, name in _section(doc, "buckets", dict).items()}
    topics = {str(name): str(description or "") for name, description in _section(doc, "topics", dict).items()}
    topology = Topology(
        project=project,
        buckets=buckets,
        topics=topics,
        notifications=tuple(_notification(item, buckets) for item in _section(doc, "notifications", list)),
        functions=tuple(Function(str(f["name"]), str(f["target"]), str(f["topic"])) for f in _section(doc, "functions", list)),
        subscriptions=tuple(Subscription(str(s["name"]), str(s["topic"])) for s in _section(doc, "subscriptions", list)),
        schedules=tuple(Schedule(str(s["name"]), str(s["topic"]), float(s["every_s"])) for s in _section(doc, "schedules", list)),
        push_delivery=_push_delivery(doc.get("push_delivery") or {}),
        firestore=_firestore(_section(doc, "firestore", dict)),
        http_functions=tuple(_http_function(item) for item in _section(doc, "http_functions", list)),
    )
    _check(topology)
    return topology


def _substitute(value: Any, variables: dict[str, str]) -> Any:
    """Replace ``${name}`` in every string of a parsed YAML tree; unknown names are an error."""
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            if match.group(1) not in variables:
                raise TopologyError(f"unknown placeholder {match.group(0)} in {value!r}")
            return variables[match.group(1)]

        return _PLACEHOLDER.sub(lookup, value)
    if isinstance(value, dict):
        return {key: _substitute(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, variables) for item in value]
    return value


def _section(doc: dict[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key) or kind()
    if not isinstance(value, kind):
        raise TopologyError(f"'{key}' must be a {kind.__name__}")
    return value


def _notification(item: dict[str, Any], buckets: dict[str, str]) -> Notification:
    key = str(item["bucket"])
    if key not in buckets:
        raise TopologyError(f"notification on undeclared bucket '{key}'")
    return Notification(
        bucket=buckets[key],
        prefix=str(item.get("prefix", "")),
        events=tuple(str(event) for event in item.get("events", ["OBJECT_FINALIZE"])),
        topic=str(item["topic"]),
    )


def _http_function(item: dict[str, Any]) -> HttpFunction:
    if not isinstance(item, dict) or set(item) != {"name", "target"}:
        raise TopologyError(f"http_functions: each entry has exactly a name and a target, not {item!r}")
    return HttpFunction(str(item["name"]), str(item["target"]))


def _push_delivery(settings: dict[str, Any]) -> PushDelivery:
    try:
        return PushDelivery(**settings)
    except TypeError as error:  # an unknown key
        raise TopologyError(f"push_delivery: {error}") from error


def _firestore(settings: dict[str, Any]) -> Firestore:
    unknown = set(settings) - {"database", "collections"}
    if unknown:
        raise TopologyError(f"firestore: unknown keys {sorted(unknown)}")
    collections = settings.get("collections") or {}
    if not isinstance(collections, dict):
        raise TopologyError("firestore: 'collections' must be a mapping of collection id -> description")
    database = str(settings.get("database") or Firestore.database)
    firestore = Firestore(database, {str(name): str(description or "") for name, description in collections.items()})
    for collection in firestore.collections:
        # Firestore's rules for an id: no '/', not '.' or '..', not __reserved__.
        if not collection or "/" in collection or collection in (".", "..") or re.fullmatch(r"__.*__", collection):
            raise TopologyError(f"firestore: '{collection}' is not a valid collection id")
    return firestore


def _check(topology: Topology) -> None:
    """Every named topic is declared, ids are long enough, names and targets are unique."""
    topics = set(topology.all_topics)
    users = [
        *(("notification", n.topic) for n in topology.notifications),
        *(("function " + f.name, f.topic) for f in topology.functions),
        *(("subscription " + s.name, s.topic) for s in topology.pull_subscriptions),
        *(("schedule " + s.name, s.topic) for s in topology.schedules),
    ]
    for user, topic in users:
        if topic not in topics:
            raise TopologyError(f"{user} names undeclared topic '{topic}'")
    subscription_ids = [s.name for s in topology.pull_subscriptions] + [f.push_subscription for f in topology.functions]
    for resource_id in [*topics, *subscription_ids]:
        if len(resource_id) < _MIN_ID_LENGTH:
            raise TopologyError(f"Pub/Sub id '{resource_id}' is shorter than {_MIN_ID_LENGTH} characters")
    for what, names in (
        ("subscription", subscription_ids),
        ("function name", list(topology.function_names)),
        ("function target", [f.target for f in (*topology.functions, *topology.http_functions)]),
    ):
        duplicates = {name for name in names if names.count(name) > 1}
        if duplicates:
            raise TopologyError(f"duplicate {what}: {sorted(duplicates)}")
    for schedule in topology.schedules:
        if schedule.every_s <= 0:
            raise TopologyError(f"schedule {schedule.name} must have every_s > 0")
