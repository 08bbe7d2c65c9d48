"""The alerts in deploy/monitoring/prometheus-rules.yaml and the operator guide they point at, docs/operations.md.

Static and offline: the rules file is parsed and checked against what the service really exports (the metric
and label names in ``service/metrics.py``, the values the code emits), every runbook link must land on a heading
of docs/operations.md, and docs/configuration.md must list exactly the variables that ``service/settings.py``
and ``config/gunicorn.conf.py`` read. Where ``promtool`` is installed, it also checks the
expressions and replays one failure scenario per alert (and one where the alert must stay silent).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from service import metrics
from tests.support.deploy import DEPLOY, ROOT

RULES_FILE = DEPLOY / "monitoring" / "prometheus-rules.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
SETTINGS_SOURCE = ROOT / "service" / "settings.py"
GUNICORN_CONFIG = ROOT / "config" / "gunicorn.conf.py"
METRICS_SOURCE = ROOT / "service" / "metrics.py"

METRIC_NAME = re.compile(r"mfa_enforcer_[a-z_]+")
SELECTOR = re.compile(r"(mfa_enforcer_[a-z_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"critical", "warning", "info"}
RUNBOOK = re.compile(r"^docs/operations\.md#([a-z0-9_-]+)$")
SETTINGS_READ = re.compile(r"""read\.\w+\(\s*["']([A-Z][A-Z0-9_]*)["']""")
ENVIRON_READ = re.compile(r"""environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""")
BACKTICKED_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")
METRIC_KINDS = ("Counter", "Histogram", "Gauge")
DATABASE_GAUGES = {f"mfa_enforcer_{name}" for name in metrics.GAUGES}


# -- what the files say ---------------------------------------------------------------------------------------


def load_rules() -> dict:
    return yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


def all_rules(document: dict) -> list[dict]:
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def declared_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every Counter, Histogram and Gauge built in service/metrics.py: name -> (kind, label names)."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for node in ast.walk(ast.parse(METRICS_SOURCE.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in METRIC_KINDS:
            name = ast.literal_eval(node.args[0])
            labels: tuple[str, ...] = tuple(ast.literal_eval(node.args[2])) if len(node.args) > 2 else ()
            for keyword in node.keywords:
                if keyword.arg == "labelnames":
                    labels = tuple(ast.literal_eval(keyword.value))
            found[name] = (node.func.id, labels)
    return found


def exported_series() -> dict[str, set[str]]:
    """The series names /metrics can show, each with its label names.

    A Counter named ``x_total`` (or ``x``) is exposed as ``x_total``; a Histogram ``h`` as ``h_bucket`` (with
    ``le``), ``h_count`` and ``h_sum``; the database gauges under their own names. ``_created`` samples are
    left out: gunicorn's multiprocess mode does not export them.
    """
    series: dict[str, set[str]] = {}
    for name, (kind, labels) in declared_metrics().items():
        if kind == "Counter":
            series[name.removesuffix("_total") + "_total"] = set(labels)
        elif kind == "Gauge":
            series[name] = set(labels)
        else:
            series[name + "_bucket"] = {*labels, "le"}
            series[name + "_count"] = set(labels)
            series[name + "_sum"] = set(labels)
    collector = metrics.DatabaseCollector(lambda _now: dict.fromkeys(metrics.GAUGES, 1.0))
    for family in collector.collect():
        series[family.name] = set()
    return series


def string_constants(folder: Path) -> set[str]:
    """Every string literal in the Python files under ``folder``: the values the code can put in a label."""
    constants: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                constants.add(node.value)
    return constants


def markdown_lines(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks (a ``#`` comment in a shell block is no heading)."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped, spaces to dashes, repeats numbered."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in markdown_lines(path):
        heading = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def documented_variables() -> set[str]:
    """The variables named in the first column of the tables of docs/configuration.md, the one reference."""
    names: set[str] = set()
    for line in markdown_lines(CONFIGURATION):
        if not line.startswith("|") or set(line) <= {"|", "-", " ", ":"}:
            continue
        first_cell = line.strip("|").split("|")[0]
        names.update(BACKTICKED_NAME.findall(first_cell))
    return names


# -- the rules file -------------------------------------------------------------------------------------------


def test_rules_file_is_a_prometheus_rule():
    """The file is one YAML document: a monitoring.coreos.com/v1 PrometheusRule with named groups of rules."""
    document = load_rules()
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    assert document["metadata"]["name"]
    groups = document["spec"]["groups"]
    assert groups
    for group in groups:
        assert group["name"]
        assert group["rules"], group["name"]


def test_every_rule_is_a_complete_alert():
    """Each rule is an alert with an expression, a `for`, a known severity, a summary, a description and a runbook."""
    rules = all_rules(load_rules())
    for rule in rules:
        name = rule.get("alert")
        assert name and re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), rule
        assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), name
        assert DURATION.match(str(rule.get("for", ""))), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        for key in ("summary", "description", "runbook"):
            assert str(rule["annotations"].get(key, "")).strip(), f"{name}: annotations.{key}"
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"


def test_every_metric_an_alert_reads_is_one_the_service_exports():
    """Each `mfa_enforcer_*` name in an expression is a series /metrics shows (suffixes as the client adds them)."""
    exported = exported_series()
    assert {"mfa_enforcer_database_up", "mfa_enforcer_deliveries_total", "mfa_enforcer_dead_letters"} <= set(exported)
    for rule in all_rules(load_rules()):
        used = set(METRIC_NAME.findall(rule["expr"]))
        assert used, f"{rule['alert']} reads none of the service's metrics"
        assert used <= set(exported), f"{rule['alert']}: {sorted(used - set(exported))} are not exported"


def test_every_label_an_alert_selects_exists_and_has_values_the_service_emits():
    """Label matchers name labels the metric has; exact values (and plain alternatives) are ones the code emits."""
    exported = exported_series()
    emitted = string_constants(ROOT / "service")
    for rule in all_rules(load_rules()):
        for metric, matchers in SELECTOR.findall(rule["expr"]):
            for label, operator, value in MATCHER.findall(matchers):
                assert label in exported[metric], f"{rule['alert']}: {metric} has no label {label!r}"
                # `=` is literal; `=~` is checked only when it is a plain list of alternatives (no pattern).
                if operator == "=" or (operator == "=~" and re.fullmatch(r"[\w/:-]+(\|[\w/:-]+)*", value)):
                    for alternative in value.split("|") if operator == "=~" else [value]:
                        assert alternative in emitted, f"{rule['alert']}: {label}={alternative!r} is never emitted"


def test_alerts_on_database_gauges_aggregate_them():
    """Every web pod reports the same queue and dead-letter gauges (read from the database), so alerts use max()."""
    for rule in all_rules(load_rules()):
        for match in METRIC_NAME.finditer(rule["expr"]):
            if match.group() in DATABASE_GAUGES:
                before = rule["expr"][: match.start()].rstrip()
                assert before.endswith("max("), f"{rule['alert']}: aggregate {match.group()} with max()"


# -- the operator guide ---------------------------------------------------------------------------------------


def test_every_runbook_points_at_a_section_of_the_operations_guide():
    """Each `runbook` annotation is docs/operations.md#anchor, and the anchor is one of the guide's headings."""
    anchors = heading_anchors(OPERATIONS)
    for rule in all_rules(load_rules()):
        runbook = RUNBOOK.match(rule["annotations"]["runbook"])
        assert runbook, f"{rule['alert']}: runbook must be docs/operations.md#<anchor>"
        assert runbook.group(1) in anchors, f"{rule['alert']}: no heading for #{runbook.group(1)}"


def test_every_alert_is_named_in_the_operations_guide():
    """An operator paged by an alert finds its name in the guide (its runbook section names it)."""
    guide = OPERATIONS.read_text(encoding="utf-8")
    for rule in all_rules(load_rules()):
        assert f"`{rule['alert']}`" in guide, rule["alert"]


def test_links_inside_the_operations_guide_resolve():
    """Every `](#anchor)` link in docs/operations.md lands on one of its headings."""
    anchors = heading_anchors(OPERATIONS)
    links = set(re.findall(r"\]\(#([^)]+)\)", "\n".join(markdown_lines(OPERATIONS))))
    assert links
    assert links <= anchors, sorted(links - anchors)


def test_configuration_tables_list_exactly_what_the_service_reads():
    """The reference's tables name only real variables, and every one settings.py or gunicorn reads."""
    from_settings = set(SETTINGS_READ.findall(SETTINGS_SOURCE.read_text(encoding="utf-8")))
    from_gunicorn = set(ENVIRON_READ.findall(GUNICORN_CONFIG.read_text(encoding="utf-8")))
    assert {"DATABASE_URL", "GENAUTH_WEBHOOK_SECRET", "ENFORCER_MAX_AGE"} <= from_settings
    assert {"WEB_CONCURRENCY", "GUNICORN_THREADS"} <= from_settings  # for config/gunicorn.conf.py
    documented = documented_variables()
    assert documented - (from_settings | from_gunicorn) == set(), "documented but never read"
    assert from_settings - documented == set(), "read by service/settings.py but not documented"
    assert from_gunicorn - documented == set(), "read by config/gunicorn.conf.py but not documented"


# -- promtool, where installed --------------------------------------------------------------------------------

# One scenario per alert where it must fire, and one where it must not. `series` are promtool input series
# (https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/); promtool's clock starts at
# 0, so time() is the evaluation time in seconds. `labels` are the series labels the alert keeps.
Series = dict[str, str]


def scenarios(
    alert: str,
    at: str,
    *,
    fires: Series | list[Series],
    silent: Series | list[Series],
    interval: str | None = None,
    labels: dict[str, str] | None = None,
) -> list[dict]:
    """The alert's scenarios evaluated at ``at``: each of ``fires`` must raise it, each of ``silent`` must not."""
    common: dict = {"alert": alert, "at": at}
    if interval is not None:
        common["interval"] = interval
    made = []
    for outcome, series_list in ((True, fires), (False, silent)):
        for series in series_list if isinstance(series_list, list) else [series_list]:
            scenario = {**common, "fires": outcome, "series": series}
            if outcome and labels is not None:
                scenario["labels"] = labels
            made.append(scenario)
    return made


def calls(status_rates: dict[str, str], endpoint: str = "/api/v3/get-user") -> Series:
    """``mfa_enforcer_genauth_calls_total`` of one endpoint, one series per status."""
    return {
        f'mfa_enforcer_genauth_calls_total{{endpoint="{endpoint}",status="{status}"}}': values
        for status, values in status_rates.items()
    }


TOKEN = "/api/v3/get-management-token"
QUEUED = 'mfa_enforcer_deliveries_total{event="login",outcome="queued"}'
OLDEST_DUE = 'mfa_enforcer_queue_oldest_due_age_seconds{instance="web-1"}'
DATABASE_UP = 'mfa_enforcer_database_up{instance="web-1"}'
DEAD_LETTERS = 'mfa_enforcer_dead_letters{instance="web-1"}'
UNAUTHORIZED = 'mfa_enforcer_deliveries_total{event="-",outcome="unauthorized"}'
FAILED = 'mfa_enforcer_decisions_total{rule="-",action="failed"}'
DECIDED = 'mfa_enforcer_decisions_total{rule="finance-sms",action="none"}'
RECONCILED = 'mfa_enforcer_reconcile_last_success_timestamp_seconds{instance="web-1"}'
CRONJOB = 'kube_cronjob_status_last_successful_time{namespace="mfa-enforcer",cronjob="mfa-enforcer-reconcile"}'
SCENARIOS: list[dict] = [
    *scenarios(
        "MfaEnforcerWritesHeld",
        "30m",
        fires={'mfa_enforcer_held_users{instance="web-1"}': "0 0 495x40"},
        silent={'mfa_enforcer_held_users{instance="web-1"}': "12x10 0x30"},  # released within 15 minutes
    ),
    *scenarios(
        "MfaEnforcerWritesPaused",
        "90m",
        fires={'mfa_enforcer_writes_paused{instance="web-1"}': "0 1x100"},
        silent={'mfa_enforcer_writes_paused{instance="web-1"}': "1x30 0x70"},  # resumed after half an hour
    ),
    *scenarios(
        "MfaEnforcerPolicyNamesUnknown",
        "30m",
        fires={'mfa_enforcer_policy_unresolved_references{instance="worker-1"}': "0 0 1x40"},
        silent={  # fixed within 15 minutes: a bad edit corrected before anyone needs paging
            'mfa_enforcer_policy_unresolved_references{instance="worker-1"}': "1x10 0x30",
        },
    ),
    *scenarios("MfaEnforcerMetricsAbsent", "15m", fires={'up{job="other"}': "1x30"}, silent={DATABASE_UP: "1x30"}),
    *scenarios(
        "MfaEnforcerDatabaseDown",
        "10m",
        fires={DATABASE_UP: "1 1 0x20"},
        silent={DATABASE_UP: "1x20"},
        labels={"instance": "web-1"},
    ),
    *scenarios(
        "MfaEnforcerDeliveriesNotRecorded",
        "12m",
        fires={'mfa_enforcer_deliveries_total{event="login",outcome="store_unavailable"}': "0+3x20"},
        silent={QUEUED: "0+3x20"},
    ),
    *scenarios(
        "MfaEnforcerWebhookUnauthorized",
        "30m",
        fires={UNAUTHORIZED: "0+10x40", QUEUED: "0+2x40"},
        # a few probes on a quiet pool: a high share, but fewer than 5 in 10 minutes
        silent={UNAUTHORIZED: "0+0.2x40", QUEUED: "0+0.2x40"},
    ),
    *scenarios(
        "MfaEnforcerDeliveriesStopped",
        "172h",
        interval="30m",
        fires=[{QUEUED: "0+300x336 100800x10"}, {QUEUED: "0+300x336 stale"}],
        silent={QUEUED: "0+300x345"},
    ),
    *scenarios(
        "MfaEnforcerListenerSilent",
        "7h",
        fires={
            'mfa_enforcer_listen_silence_seconds{instance="listen-1",code="authing.user.login"}': "0+60x480",
            'mfa_enforcer_listen_silence_seconds{instance="listen-1",code="authing.user.created"}': "0+60x100 0+60x380",
        },
        # a message every few hours keeps it quiet
        silent={
            'mfa_enforcer_listen_silence_seconds{instance="listen-1",code="authing.user.login"}': "0+60x200 0+60x280"
        },
        labels={"code": "authing.user.login"},
    ),
    *scenarios(
        "MfaEnforcerQueueBacklog",
        "50m",
        fires={OLDEST_DUE: "0+60x60", 'mfa_enforcer_queue_oldest_due_age_seconds{instance="web-2"}': "0+60x60"},
        silent={OLDEST_DUE: "0+10x60"},
    ),
    *scenarios(
        "MfaEnforcerQueueStalled",
        "20m",
        fires={OLDEST_DUE: "0+60x30", 'mfa_enforcer_queue_leased{instance="web-1"}': "0x30"},
        silent={OLDEST_DUE: "0+60x30", 'mfa_enforcer_queue_leased{instance="web-1"}': "3x30"},
    ),
    *scenarios("MfaEnforcerDeadLetters", "20m", fires={DEAD_LETTERS: "0 0 2x30"}, silent={DEAD_LETTERS: "0x30"}),
    *scenarios(
        "MfaEnforcerDeadLettersGrowing", "80m", fires={DEAD_LETTERS: "0x60 1+1x30"}, silent={DEAD_LETTERS: "3x90"}
    ),
    *scenarios(
        "MfaEnforcerNotEffective",
        "45m",
        fires={'mfa_enforcer_not_effective_users{instance="web-1"}': "0 0 3x60"},
        silent={'mfa_enforcer_not_effective_users{instance="web-1"}': "0 3x20 0x40"},
    ),
    *scenarios(
        "MfaEnforcerGenAuthErrors",
        "30m",
        fires=calls({"200": "0+80x40", "error": "0+30x40"}),
        silent=calls({"200": "0+80x40", "404": "0+1x40"}),
    ),
    *scenarios(
        "MfaEnforcerGenAuthThrottled",
        "35m",
        fires=calls({"200": "0+90x40", "429": "0+10x40"}),
        silent=calls({"200": "0+90x40", "429": "0+1x40"}),
    ),
    *scenarios(
        "MfaEnforcerGenAuthAccessKeyRejected",
        "15m",
        fires=[
            calls({"401": "0+1x20"}, TOKEN),
            # GENAUTH_AUTH=signature: no token call, every signed call refused
            {**calls({"401": "0+1x20"}, "/api/v3/list-organizations"), **calls({"401": "0+2x20"})},
        ],
        silent=[
            calls({"200": "0+1x20", "429": "0+1x20"}, TOKEN),
            # a revoked token: one 401, then a fresh token and successes
            {**calls({"401": "0 1x20", "200": "0+5x20"}), **calls({"200": "0 1 2x19"}, TOKEN)},
        ],
    ),
    *scenarios(
        "MfaEnforcerDecisionsFailing",
        "35m",
        fires={FAILED: "0+2x40", DECIDED: "0+10x40"},
        silent={FAILED: "0+0.1x40", DECIDED: "0+10x40"},
    ),
    *scenarios(
        "MfaEnforcerReconcileStale",
        "40h",
        interval="1h",
        fires=[{RECONCILED: "0x48"}, {CRONJOB: "0x48"}],
        silent={RECONCILED: "0+3600x48"},
    ),
]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return path


def write_plain_rules(folder: Path) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rule file, without annotations (the scenarios test
    expressions and labels; promtool would otherwise want every annotation spelled out)."""
    groups = load_rules()["spec"]["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        rule.pop("annotations", None)
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    return path


def test_every_alert_has_a_firing_and_a_silent_scenario():
    """New alerts come with scenarios: each alert has one where it fires and one where it stays silent."""
    alerts = {rule["alert"] for rule in all_rules(load_rules())}
    assert {s["alert"] for s in SCENARIOS if s["fires"]} == alerts
    assert {s["alert"] for s in SCENARIOS if not s["fires"]} == alerts


def test_promtool_accepts_the_rules(tmp_path):
    """promtool parses every expression and template (annotations included) of the rule groups."""
    groups = load_rules()["spec"]["groups"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("interval", sorted({s.get("interval", "1m") for s in SCENARIOS}))
def test_each_alert_fires_in_its_scenario_and_only_there(tmp_path, interval):
    """promtool replays the scenarios: each alert fires (with the expected labels) or stays silent as stated.

    Scenarios are grouped by sample interval, and rules are evaluated at that interval: a week of data at one
    evaluation a minute would take promtool half a minute, and hourly samples would go stale between evaluations.
    """
    binary = promtool()
    rules_path = write_plain_rules(tmp_path)
    labels_of = {rule["alert"]: rule["labels"] for rule in all_rules(load_rules())}
    tests = []
    for scenario in (s for s in SCENARIOS if s.get("interval", "1m") == interval):
        expected = []
        if scenario["fires"]:
            expected = [{"exp_labels": {**labels_of[scenario["alert"]], **scenario.get("labels", {})}}]
        tests.append(
            {
                "interval": interval,
                "input_series": [{"series": series, "values": values} for series, values in scenario["series"].items()],
                "alert_rule_test": [
                    {"eval_time": scenario["at"], "alertname": scenario["alert"], "exp_alerts": expected}
                ],
            }
        )
    suite = tmp_path / "scenarios.yaml"
    suite.write_text(
        yaml.safe_dump({"rule_files": [rules_path.name], "evaluation_interval": interval, "tests": tests}),
        encoding="utf-8",
    )
    result = subprocess.run(
        [binary, "test", "rules", suite.name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
