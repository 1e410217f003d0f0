"""The HTML report's page as a Jinja2 template with autoescape on: every value from a run (names, paths,
YAML, JSON) is escaped by the engine, so a scenario named `<script>` is text, never markup."""

from __future__ import annotations

from jinja2 import Environment

_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)

_SOURCE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ name }} — servesim report</title>
<style>{{ css | safe }}</style></head><body>
{% macro table(t) %}
<table><thead><tr>{% for h in t.header %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for r in t.rows %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% endmacro %}
<h1>{{ name }}</h1>
<p class="sub">{{ model }} on {{ cluster }}; scheduler {{ scheduler }}, router {{ router }}; seed {{ seed }};
servesim {{ version }}</p>
<div class="kpi">{% for k, v in kpis %}<div>{{ k }}<b>{{ v }}</b></div>{% endfor %}</div>
<h2>Latency (ms)</h2>
{{ table(latency) }}
<h2>Counts and throughput</h2>
{{ table(counts) }}
{% if slo %}<p>SLO: {{ slo }}</p>{% else %}<p>No SLO set: goodput and attainment are not defined.</p>{% endif %}
{% if cost.rows %}<h2>Cost and power</h2>
{{ table(cost) }}{% endif %}
{% if transfer.rows %}<h2>KV transfer</h2>
{{ table(transfer) }}{% endif %}
{% if classes.rows %}<h2>Traffic classes (ms)</h2>
{{ table(classes) }}{% endif %}
{% if instances %}<h2>Instances</h2>
{{ table(instances) }}{% endif %}
{% if figures %}<h2>Plots</h2>
{% for alt, b64 in figures %}<img alt="{{ alt }}" src="data:image/png;base64,{{ b64 }}">
{% endfor %}{% endif %}
<h2>Scenario</h2>
<pre>{{ scenario_yaml }}</pre>
<details><summary>summary.json</summary>
<pre>{{ summary_json }}</pre></details>
</body></html>
"""

TEMPLATE = _ENV.from_string(_SOURCE)
