"""The rules directory: priorities, critical list, threshold tables, operator rules, runbooks.

Every number and name from the operations guide lives in these YAML files; this module only
reads and checks them (pydantic, unknown keys are errors) and exposes typed, immutable objects.

::

    rules/
      priorities.yaml   P0..P3 policies (label, name, respond/resolve targets, paging,
                        stakeholder channels) and the severity fallback (classification step 5)
      critical.yaml     the critical (page on-call) list (step 3)
      thresholds.yaml   the Application/Infrastructure tables and their band priorities (step 4)
      rules.yaml        operator rules, first match wins (step 2); optional
      runbooks/*.md     runbooks, referenced by file name without ``.md``; optional

Every problem found is reported, not only the first, as ``file:line: key.path: message``
(:class:`RulesError`); lines come from PyYAML's composed node tree.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from bridge.durations import parse_duration
from bridge.keypath import Loc, key_path
from bridge.matchers import Matcher, parse_matcher
from bridge.model import Priority
from bridge.values import Unit
from bridge.yaml12 import Yaml12Loader

__all__ = [
    "NEXT_BUSINESS_DAY",
    "Bands",
    "CriticalAlertname",
    "CriticalCondition",
    "CriticalList",
    "MaintenanceType",
    "OperatorRule",
    "PriorityPolicy",
    "Rules",
    "RulesError",
    "Runbook",
    "Target",
    "ThresholdRow",
    "bundled_directory",
]

NEXT_BUSINESS_DAY: Literal["next_business_day"] = "next_business_day"
DEFAULT_ESCALATE_MAX = 3  # escalation rounds when priorities.yaml gives no escalate_max

Target: TypeAlias = timedelta | Literal["next_business_day"]
"""A deadline rule: a fixed duration, or the keyword for "the end of the next business day"."""

MaintenanceType = Literal["perfective", "adaptive", "preventive"]
Channel = Literal["email", "sms", "status_page"]
Page = Literal["always", "business_hours", "never"]
Band = Literal["critical", "warning"]

PRIORITIES_FILE = "priorities.yaml"
CRITICAL_FILE = "critical.yaml"
THRESHOLDS_FILE = "thresholds.yaml"
RULES_FILE = "rules.yaml"
RUNBOOKS_DIR = "runbooks"


class RulesError(Exception):
    """The rules directory is invalid; ``problems`` has one ``file:line: key: message`` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# ---------------------------------------------------------------------------------------------
# Field types


def _target(value: object) -> Target:
    if isinstance(value, timedelta):
        return value
    if value == NEXT_BUSINESS_DAY:
        return NEXT_BUSINESS_DAY
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 15m or {NEXT_BUSINESS_DAY}")
    try:
        delta = parse_duration(value)
    except ValueError:
        raise ValueError(
            f"expected a duration such as 15m or {NEXT_BUSINESS_DAY}, got {value!r}"
        ) from None
    if delta <= timedelta(0):
        raise ValueError("a deadline must be longer than zero")
    return delta


def _interval(value: object) -> timedelta:
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, str):
        try:
            delta = parse_duration(value)
        except ValueError:
            raise ValueError(f"expected a duration such as 5m, got {value!r}") from None
    else:
        raise ValueError("expected a duration such as 5m")
    if delta <= timedelta(0):
        raise ValueError("must be longer than zero")
    return delta


def _duration_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a Prometheus duration such as 5m")
    parse_duration(value)  # ValueError names the problem
    return value


def _matcher(value: object) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not isinstance(value, str):
        raise ValueError('expected a matcher string such as alertname=~"Disk.*"')
    return parse_matcher(value)


TargetField = Annotated[Target, PlainValidator(_target)]
IntervalField = Annotated[timedelta, PlainValidator(_interval)]
DurationText = Annotated[str, PlainValidator(_duration_text)]
MatcherField = Annotated[Matcher, PlainValidator(_matcher)]
Text = Annotated[str, Field(strict=True, min_length=1)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
MetricName = Annotated[str, Field(strict=True, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# priorities.yaml


class _PolicyFields(_Model):
    label: Text
    name: Text
    handling: str = ""
    meaning: Text
    examples: tuple[Text, ...] = ()
    respond: TargetField
    respond_text: str = ""
    resolve: TargetField
    resolve_text: str = ""
    page: Page
    # A missed response deadline pages the escalation contacts, then again every
    # ``escalate_every`` (default: the respond target, else a day) while nobody acknowledges,
    # ``escalate_max`` rounds in all (0: the breach is commented and labelled, nobody paged).
    escalate_every: IntervalField | None = None
    escalate_max: Annotated[int, Field(strict=True, ge=0, le=100)] = DEFAULT_ESCALATE_MAX
    stakeholders: tuple[Channel, ...]
    stakeholders_text: str = ""


class PriorityPolicy(_PolicyFields):
    """What a priority means and demands: its GitHub label, deadlines, paging and channels."""

    priority: Priority

    @property
    def escalation_interval(self) -> timedelta:
        """How long after one escalation round the next one pages, while unacknowledged."""
        if self.escalate_every is not None:
            return self.escalate_every
        return self.respond if isinstance(self.respond, timedelta) else timedelta(days=1)


class _PrioritiesFile(_Model):
    priorities: dict[Priority, _PolicyFields]
    severity_fallback: dict[Text, Priority]


# ---------------------------------------------------------------------------------------------
# critical.yaml


class CriticalAlertname(_Model):
    """A critical-list entry matched by the alert's ``alertname`` label."""

    alertname: Text
    title: str = ""
    for_: DurationText | None = Field(default=None, alias="for")
    runbook: Text | None = None
    # For ``incident-bridge rules generate`` only (bridge.promrules); classification ignores them.
    expr: Text | None = None  # PromQL that fires the alert; none: no Prometheus rule
    runbook_url: Text | None = None


class CriticalCondition(_Model):
    """A critical-list entry: the alert's ``metric`` label and its ``value`` above ``above``."""

    metric: MetricName
    above: Number
    unit: Unit
    title: str = ""
    for_: DurationText | None = Field(default=None, alias="for")
    runbook: Text | None = None
    # For ``incident-bridge rules generate`` only (bridge.promrules); classification ignores them.
    alertname: MetricName | None = None  # the generated alert's name; none: no Prometheus rule
    expr: Text | None = None  # PromQL giving the value in ``unit``; default: the row's ``expr``
    runbook_url: Text | None = None


class CriticalList(_Model):
    """The critical (page on-call) list and the priority it gives."""

    priority: Priority
    alertnames: tuple[CriticalAlertname, ...] = ()
    conditions: tuple[CriticalCondition, ...] = ()


# ---------------------------------------------------------------------------------------------
# thresholds.yaml


class Bands(_Model):
    """The priorities the threshold bands give."""

    critical: Priority
    warning: Priority


class ThresholdRow(_Model):
    """One row of the guide's metric tables: warning band [low, high], critical strictly above."""

    metric: MetricName
    table: str = ""
    title: Text
    unit: Unit
    normal: str = ""
    warning: tuple[Number, Number]
    critical_above: Number
    for_: DurationText | None = Field(default=None, alias="for")
    runbook: Text | None = None
    # For ``incident-bridge rules generate`` only (bridge.promrules); classification ignores them.
    expr: Text | None = None  # PromQL giving the row's value in ``unit``; none: no rules
    capacity_for: DurationText | None = None  # above critical this long: a maintenance request
    runbook_url: Text | None = None

    def band(self, value: float) -> Band | None:
        """``critical`` above the critical bound, ``warning`` inside [low, high], else None."""
        if value > self.critical_above:
            return "critical"
        low, high = self.warning
        if low <= value <= high:
            return "warning"
        return None


class _ThresholdsFile(_Model):
    bands: Bands
    rows: tuple[ThresholdRow, ...]


# ---------------------------------------------------------------------------------------------
# rules.yaml


class OperatorRule(_Model):
    """An operator rule: all matchers must match; it gives a priority or makes a maintenance."""

    name: Text
    match: tuple[MatcherField, ...]
    priority: Priority | None = None
    kind: Literal["maintenance"] | None = None
    maintenance_type: MaintenanceType | None = None
    runbook: Text | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every matcher matches the alert's labels."""
        return all(m.matches(labels) for m in self.match)


class _RulesFile(_Model):
    rules: tuple[OperatorRule, ...] | None = None


# ---------------------------------------------------------------------------------------------
# runbooks/


@dataclass(frozen=True, slots=True)
class Runbook:
    """A runbook: its name (file name without ``.md``), its first heading and its Markdown."""

    name: str
    title: str
    markdown: str


# ---------------------------------------------------------------------------------------------
# The loaded directory


@dataclass(frozen=True, slots=True)
class Rules:
    """A validated rules directory. Build it with :meth:`load` or :meth:`bundled`."""

    directory: Path
    policies: Mapping[Priority, PriorityPolicy]
    severity_fallback: Mapping[str, Priority]  # lower-cased severity → priority, no "default"
    severity_default: Priority
    critical: CriticalList
    critical_by_alertname: Mapping[str, CriticalAlertname]
    bands: Bands
    thresholds: Mapping[str, ThresholdRow]  # by metric, in file order
    operator_rules: tuple[OperatorRule, ...]
    runbooks: Mapping[str, Runbook]

    @classmethod
    def load(cls, directory: Path | str) -> Rules:
        """Read and check ``directory``; RulesError lists every problem found."""
        return _Loader(Path(directory)).load()

    @classmethod
    def bundled(cls) -> Rules:
        """The rules shipped with the package (cached: the object is immutable)."""
        return _bundled()

    def policy(self, priority: Priority) -> PriorityPolicy:
        """The policy of ``priority`` (every priority has one; load() checks)."""
        return self.policies[priority]

    def runbook(self, name: str | None) -> Runbook | None:
        """The runbook called ``name``, or None."""
        return self.runbooks.get(name) if name else None

    def threshold(self, metric: str) -> ThresholdRow | None:
        """The threshold row for ``metric``, or None."""
        return self.thresholds.get(metric)

    def severity_priority(self, severity: str) -> Priority | None:
        """The priority the fallback gives ``severity`` (case-insensitive), None for the default."""
        return self.severity_fallback.get(severity.strip().lower())


def bundled_directory() -> Path:
    """Where the bundled rules are: ``bridge/bundled_rules`` in a wheel, else ``<repo>/rules``."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "bundled_rules", package.parent / "rules"):
        if candidate.is_dir():
            return candidate
    raise RulesError([f"{package / 'bundled_rules'}: the bundled rules directory is missing"])


@functools.cache
def _bundled() -> Rules:
    return Rules.load(bundled_directory())


# ---------------------------------------------------------------------------------------------
# Loading and checking

_M = TypeVar("_M", bound=BaseModel)


@dataclass(slots=True)
class _Document:
    """One parsed YAML file: its display path and node tree (for line numbers)."""

    path: Path
    node: yaml.Node | None

    def line(self, loc: Loc) -> int:
        """The 1-based line of the deepest node along ``loc`` that exists."""
        node = self.node
        if node is None:
            return 1
        line = node.start_mark.line
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            key_node, node = child
            # A key's problem (unknown, invalid) is best shown at the key itself.
            line = (key_node or node).start_mark.line
        return line + 1


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part >= 0:
        return (None, node.value[part]) if part < len(node.value) else None
    return None


class _Loader:
    """Loads one rules directory, collecting every problem before giving up."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.problems: list[str] = []

    def problem(self, doc: _Document, loc: Loc, message: str, line: int | None = None) -> None:
        """Record ``message`` about the key at ``loc`` (its line found unless given)."""
        where = f"{doc.path}:{line or doc.line(loc)}"
        path = key_path(loc)
        self.problems.append(f"{where}: {path}: {message}" if path else f"{where}: {message}")

    def load(self) -> Rules:
        if not self.directory.is_dir():
            raise RulesError([f"{self.directory}: not a directory"])
        priorities = self.parse(PRIORITIES_FILE, _PrioritiesFile)
        critical = self.parse(CRITICAL_FILE, CriticalList)
        thresholds = self.parse(THRESHOLDS_FILE, _ThresholdsFile)
        operator = self.parse(RULES_FILE, _RulesFile, required=False, empty={})
        runbooks = self.read_runbooks()

        if priorities:
            self.check_priorities(*priorities)
        if thresholds:
            self.check_thresholds(*thresholds)
        if critical:
            self.check_critical(*critical, thresholds[1] if thresholds else None)
        if operator:
            self.check_operator_rules(*operator)
        self.check_runbook_references(runbooks, critical, thresholds, operator)
        if self.problems or not (priorities and critical and thresholds):
            raise RulesError(self.problems)

        pfile, cfile, tfile = priorities[1], critical[1], thresholds[1]
        fallback = {k.strip().lower(): v for k, v in pfile.severity_fallback.items()}
        default = fallback.pop("default")
        policies = {
            p: PriorityPolicy.model_validate({**dict(fields), "priority": p})
            for p, fields in sorted(pfile.priorities.items(), key=lambda kv: kv[0].rank)
        }
        return Rules(
            directory=self.directory,
            policies=MappingProxyType(policies),
            severity_fallback=MappingProxyType(fallback),
            severity_default=default,
            critical=cfile,
            critical_by_alertname=MappingProxyType({e.alertname: e for e in cfile.alertnames}),
            bands=tfile.bands,
            thresholds=MappingProxyType({row.metric: row for row in tfile.rows}),
            operator_rules=(operator[1].rules or ()) if operator else (),
            runbooks=MappingProxyType(runbooks),
        )

    # -- reading --------------------------------------------------------------------------

    def parse(
        self, name: str, model: type[_M], *, required: bool = True, empty: Any = None
    ) -> tuple[_Document, _M] | None:
        path = self.directory / name
        if not path.is_file():
            if required:
                self.problems.append(f"{path}: required file is missing")
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(f"{path}: cannot read: {exc}")
            return None
        loader = Yaml12Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else empty
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            self.problems.append(f"{path}{line}: invalid YAML: {exc.problem or exc}")
            return None
        except yaml.YAMLError as exc:
            self.problems.append(f"{path}: invalid YAML: {exc}")
            return None
        finally:
            loader.dispose()
        doc = _Document(path, node)
        before = len(self.problems)
        self.check_duplicate_keys(doc, node, ())
        try:
            parsed = model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self.problem(doc, tuple(error["loc"]), _message(error))
            return None
        return (doc, parsed) if len(self.problems) == before else None

    def check_duplicate_keys(self, doc: _Document, node: yaml.Node | None, loc: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value)
                if name in seen:
                    line = key.start_mark.line + 1  # the lookup by path would find the first one
                    self.problem(doc, (*loc, name), "key appears more than once", line)
                seen.add(name)
                self.check_duplicate_keys(doc, value, (*loc, name))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.check_duplicate_keys(doc, item, (*loc, index))

    def read_runbooks(self) -> dict[str, Runbook]:
        folder = self.directory / RUNBOOKS_DIR
        runbooks: dict[str, Runbook] = {}
        if not folder.is_dir():
            return runbooks
        for path in sorted(folder.glob("*.md")):
            try:
                markdown = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                self.problems.append(f"{path}: cannot read: {exc}")
                continue
            runbooks[path.stem] = Runbook(path.stem, _title(markdown, path.stem), markdown)
        return runbooks

    # -- cross-field checks ---------------------------------------------------------------

    def check_priorities(self, doc: _Document, pfile: _PrioritiesFile) -> None:
        missing = [p.value for p in Priority if p not in pfile.priorities]
        if missing:
            self.problem(doc, ("priorities",), f"missing {', '.join(missing)}")
        for field in ("label", "name"):
            seen: dict[str, Priority] = {}
            for p, fields in pfile.priorities.items():
                value = getattr(fields, field)
                if value in seen:
                    self.problem(
                        doc, ("priorities", p.value, field), f"{value!r} is also {seen[value]}'s"
                    )
                seen[value] = p
        for p, fields in pfile.priorities.items():
            for index, channel in _duplicates(fields.stakeholders):
                self.problem(
                    doc, ("priorities", p.value, "stakeholders", index), f"{channel} listed twice"
                )
        keys: dict[str, str] = {}
        for key in pfile.severity_fallback:
            folded = key.strip().lower()
            if folded in keys:
                self.problem(doc, ("severity_fallback", key), f"same severity as {keys[folded]!r}")
            keys[folded] = key
        if "default" not in keys:
            self.problem(doc, ("severity_fallback",), "missing default")

    def check_thresholds(self, doc: _Document, tfile: _ThresholdsFile) -> None:
        seen: set[str] = set()
        for index, row in enumerate(tfile.rows):
            if row.metric in seen:
                self.problem(doc, ("rows", index, "metric"), f"{row.metric} has another row")
            seen.add(row.metric)
            low, high = row.warning
            if low > high:
                self.problem(doc, ("rows", index, "warning"), "low must not exceed high")
            elif row.critical_above < high:
                self.problem(
                    doc,
                    ("rows", index, "critical_above"),
                    f"must not be below the warning band's high end ({high:g})",
                )

    def check_critical(
        self, doc: _Document, cfile: CriticalList, tfile: _ThresholdsFile | None
    ) -> None:
        for index, name in _duplicates(e.alertname for e in cfile.alertnames):
            self.problem(doc, ("alertnames", index, "alertname"), f"{name} is listed twice")
        rows = {row.metric: row for row in tfile.rows} if tfile else {}
        for index, cond in enumerate(cfile.conditions):
            row = rows.get(cond.metric)
            if row is not None and row.unit != cond.unit:
                self.problem(
                    doc,
                    ("conditions", index, "unit"),
                    f"{cond.unit} differs from the unit of the {cond.metric} row in "
                    f"{THRESHOLDS_FILE} ({row.unit})",
                )

    def check_operator_rules(self, doc: _Document, rfile: _RulesFile) -> None:
        rules = rfile.rules or ()
        for index, name in _duplicates(rule.name for rule in rules):
            self.problem(doc, ("rules", index, "name"), f"another rule is called {name!r}")
        for index, rule in enumerate(rules):
            loc: Loc = ("rules", index)
            if not rule.match:
                self.problem(doc, (*loc, "match"), "needs at least one matcher")
            if rule.priority is None and rule.kind is None:
                self.problem(doc, loc, "needs either priority (P0..P3) or kind: maintenance")
            elif rule.priority is not None and rule.kind is not None:
                self.problem(doc, (*loc, "kind"), "give either priority or kind, not both")
            if rule.maintenance_type is not None and rule.kind is None:
                self.problem(doc, (*loc, "maintenance_type"), "only with kind: maintenance")

    def check_runbook_references(
        self,
        runbooks: Mapping[str, Runbook],
        critical: tuple[_Document, CriticalList] | None,
        thresholds: tuple[_Document, _ThresholdsFile] | None,
        operator: tuple[_Document, _RulesFile] | None,
    ) -> None:
        known = ", ".join(sorted(runbooks)) or "none"
        for doc, loc, name in _runbook_references(critical, thresholds, operator):
            if name not in runbooks:
                self.problem(
                    doc, (*loc, "runbook"), f"no runbook {name!r} in {RUNBOOKS_DIR}/ ({known})"
                )


def _runbook_references(
    critical: tuple[_Document, CriticalList] | None,
    thresholds: tuple[_Document, _ThresholdsFile] | None,
    operator: tuple[_Document, _RulesFile] | None,
) -> Iterator[tuple[_Document, Loc, str]]:
    if critical:
        doc, cfile = critical
        for index, by_name in enumerate(cfile.alertnames):
            if by_name.runbook:
                yield doc, ("alertnames", index), by_name.runbook
        for index, condition in enumerate(cfile.conditions):
            if condition.runbook:
                yield doc, ("conditions", index), condition.runbook
    if thresholds:
        doc, tfile = thresholds
        for index, row in enumerate(tfile.rows):
            if row.runbook:
                yield doc, ("rows", index), row.runbook
    if operator:
        doc, rfile = operator
        for index, rule in enumerate(rfile.rules or ()):
            if rule.runbook:
                yield doc, ("rules", index), rule.runbook


def _duplicates(values: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(index, value) for every value that already appeared earlier."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            yield index, value
        seen.add(value)


def _message(error: Any) -> str:
    """A pydantic error as one short sentence, without pydantic's "Value error, " prefix."""
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return str(error["msg"])


_HEADING_RE = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _title(markdown: str, fallback: str) -> str:
    found = _HEADING_RE.search(markdown)
    return found.group(1) if found else fallback
