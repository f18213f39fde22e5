"""Drives Helm's own Go library (the `helm-python-sdk` package) for the chart tests.

    helm_tool.py lint   CHART VALUES.yaml          -> JSON lint report on stdout
    helm_tool.py render CHART VALUES.yaml RELEASE NAMESPACE
                                                   -> the manifests on stdout, CRDs first, as
                                                      one multi-document YAML stream

Exit status 0 on success; on a Helm error, 2 with the error on stderr (the schema's message
for invalid values).
"""

import json
import sys

import helm_python as helm
import yaml


def load_values(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def lint(chart, values_path):
    report = helm.lint(chart, load_values(values_path), strict=True, namespace="frontdesk")
    print(json.dumps(report))


def render(chart_path, values_path, release, namespace):
    chart = helm.Chart.load(chart_path)
    values = load_values(values_path)
    # `helm install` validates the values against values.schema.json before rendering.
    chart.validate_schema(values)
    out = []
    for crd in sorted(chart.crds, key=lambda c: c["name"]):
        out.append("# Source: %s\n%s" % (crd["name"], crd["data"]))
    manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    for path in sorted(manifests):
        body = manifests[path]
        if path.endswith("NOTES.txt"):
            sys.stderr.write(body)
            continue
        if body.strip():
            out.append("# Source: %s\n%s" % (path, body))
    sys.stdout.write("\n---\n".join(out))


def main(argv):
    try:
        if argv[1] == "lint":
            lint(argv[2], argv[3])
        elif argv[1] == "render":
            render(argv[2], argv[3], argv[4], argv[5])
        else:
            raise SystemExit("unknown command %r" % argv[1])
    except helm.HelmError as e:
        sys.stderr.write("helm error (%s): %s\n" % (type(e).__name__, e))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
