/**
 * Which metric names a PromQL expression selects, for the test that checks
 * the shipped rules and dashboard against what the exporter emits.
 *
 * Deliberately small: it covers the PromQL our own files use (selectors,
 * functions, aggregations with `by`/`without`, vector matching with
 * `on`/`ignoring`/`group_*`, ranges, subqueries, `offset`, numbers, durations,
 * strings, Grafana's `$variables`). It does not read `{__name__="..."}`
 * selectors; our files do not use them.
 *
 * @module
 */

/** PromQL words that are not metric names where they stand alone. */
const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "atan2",
  "inf",
  "nan",
  "start",
  "end",
]);

/** `by (a, b)` and its kin: the parenthesised list after them names labels, not metrics. */
const LABEL_LISTS = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/g;

/** A number or a duration (`0.9`, `1e3`, `0x1f`, `5m`, `1h30m`): never a name. */
const NUMBER = /^(?:0x[0-9a-f]+|(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?(?:ms|[smhdwy])*)/i;

const IDENTIFIER = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

/**
 * The metric names an expression selects, sorted and without duplicates.
 *
 * A name is an identifier outside `{...}`, `[...]`, strings and label lists, not a keyword, and
 * not followed by `(` (a function or aggregation).
 *
 * @example Usage
 * ```ts
 * import { metricNames } from "./promql_names.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 * deepStrictEqual(
 *   metricNames('sum by (le) (rate(kvm_vcpu_halt_wait_seconds_bucket{domain="a"}[5m]))'),
 *   ["kvm_vcpu_halt_wait_seconds_bucket"],
 * );
 * ```
 *
 * @param expr A PromQL expression; Grafana variables (`$x`, `${x}`, `[[x]]`) are allowed.
 * @returns The metric names.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\$\{[^}]*\}|\$\w+/g, " ")
    .replace(/\{[^{}]*\}/g, " ")
    .replace(/\[[^\[\]]*\]/g, " ")
    .replace(LABEL_LISTS, " ");
  const names = new Set<string>();
  let rest = stripped;
  while (rest.length > 0) {
    const number = NUMBER.exec(rest);
    if (number) {
      rest = rest.slice(number[0].length);
      continue;
    }
    const identifier = IDENTIFIER.exec(rest);
    if (!identifier) {
      rest = rest.slice(1);
      continue;
    }
    const word = identifier[0];
    rest = rest.slice(word.length);
    const isCall = /^\s*\(/.test(rest);
    if (!isCall && !KEYWORDS.has(word.toLowerCase())) names.add(word);
  }
  return [...names].sort();
}

/**
 * The metric names of a Grafana template variable's query: `label_values(SELECTOR, label)` and
 * `query_result(EXPR)` select metrics; `label_values(label)` and `label_names()` do not.
 *
 * @param query The variable's query text.
 * @returns The metric names.
 */
export function variableMetricNames(query: string): string[] {
  const labelValues = /^\s*label_values\((.*),\s*\w+\s*\)\s*$/.exec(query);
  if (labelValues) return metricNames(labelValues[1]!);
  const queryResult = /^\s*query_result\((.*)\)\s*$/.exec(query);
  if (queryResult) return metricNames(queryResult[1]!);
  return [];
}
