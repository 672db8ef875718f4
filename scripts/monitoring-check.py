"""The monitoring part of `make deploy-check`: takes a rendered kustomization apart so that each
piece is checked by the tool made for it, and turns the Grafana dashboard's queries into a rules
file so that promtool parses them too.

  monitoring-check.py split RENDERED OUTDIR
      OUTDIR/resources.yaml     every object but the PrometheusRules (kubernetes-validate has no
                                schema for them and would only warn)
      OUTDIR/rules.yaml         the PrometheusRules' groups, for promtool (absent if none)
      OUTDIR/dashboards/*.json  the data of each ConfigMap labelled grafana_dashboard: "1"
  monitoring-check.py same-rules RULES_FILE PROMETHEUSRULE_FILE
      fails unless the PrometheusRule's spec is the rules file's content
  monitoring-check.py dashboard-queries DASHBOARD_JSON OUT
      writes every panel query as a recording rule (Grafana's variables replaced) for
      `promtool check rules`, after checking the dashboard's structure

Runs on the tools' Python (target/tools/venv), which has PyYAML. Exits 1 with a message on the
first problem.
"""

import json
import re
import sys
from pathlib import Path

import yaml

PROMETHEUS_RULE_API = "monitoring.coreos.com/v1"
# What a PrometheusRule may carry besides its groups, which promtool checks strictly.
ENVELOPE_KEYS = {"apiVersion", "kind", "metadata", "spec"}
METADATA_KEYS = {"name", "namespace", "labels", "annotations"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Grafana's variables as the dashboard uses them, and a value promtool can parse for each.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
}


class CheckError(Exception):
    pass


def load_documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def check_envelope(obj):
    where = f"PrometheusRule {obj.get('metadata', {}).get('name', '?')}"
    if obj.get("apiVersion") != PROMETHEUS_RULE_API:
        raise CheckError(f"{where}: apiVersion is not {PROMETHEUS_RULE_API}")
    extra = set(obj) - ENVELOPE_KEYS
    if extra:
        raise CheckError(f"{where}: unknown fields {sorted(extra)}")
    metadata = obj.get("metadata") or {}
    extra = set(metadata) - METADATA_KEYS
    if extra:
        raise CheckError(f"{where}: unknown metadata fields {sorted(extra)}")
    name = metadata.get("name", "")
    if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        raise CheckError(f"{where}: metadata.name is not a DNS subdomain")
    for field in ("labels", "annotations"):
        values = metadata.get(field) or {}
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise CheckError(f"{where}: metadata.{field} is not a map of strings")
    spec = obj.get("spec")
    if not isinstance(spec, dict) or set(spec) != {"groups"} or not isinstance(spec["groups"], list):
        raise CheckError(f"{where}: spec must hold exactly `groups`, a list")
    return spec["groups"]


def is_dashboard(obj):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return obj.get("kind") == "ConfigMap" and labels.get("grafana_dashboard") == "1"


def split(rendered, outdir):
    outdir = Path(outdir)
    (outdir / "dashboards").mkdir(parents=True, exist_ok=True)
    for old in (outdir / "dashboards").glob("*.json"):
        old.unlink()
    rules = outdir / "rules.yaml"
    rules.unlink(missing_ok=True)
    others, groups, dashboards = [], [], []
    for obj in load_documents(rendered):
        if obj.get("kind") == "PrometheusRule":
            groups.extend(check_envelope(obj))
            continue
        others.append(obj)
        if is_dashboard(obj):
            name = obj["metadata"]["name"]
            for key, text in (obj.get("data") or {}).items():
                if not key.endswith(".json"):
                    raise CheckError(f"ConfigMap {name}: dashboard key {key} does not end in .json")
                try:
                    json.loads(text)
                except json.JSONDecodeError as error:
                    raise CheckError(f"ConfigMap {name}: {key} is not JSON: {error}") from error
                (outdir / "dashboards" / f"{name}-{key}").write_text(text, encoding="utf-8")
                dashboards.append(f"{name}/{key}")
    with open(outdir / "resources.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump_all(others, f, sort_keys=False)
    if groups:
        with open(rules, "w", encoding="utf-8") as f:
            yaml.safe_dump({"groups": groups}, f, sort_keys=False)
    print(
        f"  {rendered}: {len(others)} objects for kubernetes-validate, "
        f"{len(groups)} PrometheusRule groups for promtool, "
        f"dashboards: {', '.join(dashboards) or 'none'}"
    )


def same_rules(rules_file, prometheus_rule_file):
    plain = load_documents(rules_file)
    objects = load_documents(prometheus_rule_file)
    if len(plain) != 1 or len(objects) != 1:
        raise CheckError("expected one document in each file")
    if check_envelope(objects[0]) != plain[0].get("groups"):
        raise CheckError(
            f"{prometheus_rule_file}'s spec.groups differ from {rules_file}'s groups: "
            f"copy the rules file's groups into it"
        )
    print(f"  {prometheus_rule_file} holds the rules of {rules_file}")


def panels_of(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def dashboard_queries(path, out):
    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    for field in ("uid", "title", "panels"):
        if not dashboard.get(field):
            raise CheckError(f"{path}: no {field}")
    ids, rules = set(), []
    for panel in panels_of(dashboard):
        pid = panel.get("id")
        if pid in ids:
            raise CheckError(f"{path}: panel id {pid} is used twice")
        ids.add(pid)
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            where = f"{path}: panel {pid} ({panel.get('title')}) query {target.get('refId')}"
            if not expr:
                raise CheckError(f"{where} has no expr")
            if (target.get("datasource") or {}).get("uid") != "${datasource}":
                raise CheckError(f"{where} does not use the $datasource variable")
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            if "$" in expr:
                raise CheckError(f"{where} uses a variable the dashboard check does not know")
            rules.append({"record": f"dashboard:panel_{pid}_{target.get('refId')}", "expr": expr})
    if not rules:
        raise CheckError(f"{path}: no queries")
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, sort_keys=False)
    print(f"  {path}: {len(ids)} panels, {len(rules)} queries for promtool")


def main(argv):
    commands = {"split": split, "same-rules": same_rules, "dashboard-queries": dashboard_queries}
    if len(argv) != 4 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        commands[argv[1]](argv[2], argv[3])
    except (CheckError, OSError, yaml.YAMLError, json.JSONDecodeError) as error:
        print(f"monitoring-check: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
