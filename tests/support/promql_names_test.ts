import { deepStrictEqual } from "node:assert/strict";
import { metricNames, variableMetricNames } from "./promql_names.ts";

const CASES: [string, string, string[]][] = [
  ["a bare name", "up", ["up"]],
  ["a name with labels", 'up{job="kvm_exporter"} == 0', ["up"]],
  ["a recorded name with colons", "instance_domain:kvm_vm_exits:rate5m > 1000", [
    "instance_domain:kvm_vm_exits:rate5m",
  ]],
  ["functions and ranges", "rate(kvm_vm_exits_total[5m])", ["kvm_vm_exits_total"]],
  [
    "an aggregation with by before the argument",
    "sum by (job, instance, domain, le) (rate(kvm_vcpu_halt_wait_seconds_bucket[5m]))",
    ["kvm_vcpu_halt_wait_seconds_bucket"],
  ],
  ["an aggregation with by after the argument", "sum(x_total) by (le, domain)", ["x_total"]],
  ["without", "max without (vcpu) (a)", ["a"]],
  [
    "vector matching",
    "a > 0 unless on (job, instance) (b == 1) and ignoring(x) c * on(domain) group_left(tenant) d",
    ["a", "b", "c", "d"],
  ],
  ["numbers, exponents, hex", "histogram_quantile(0.9, a) * 1e3 + 0x1f - .5", ["a"]],
  ["offset and durations", "a offset 1h30m", ["a"]],
  ["a subquery", "max_over_time(rate(a[5m])[1h:1m])", ["a"]],
  ["bool", "a < bool 0.001", ["a"]],
  ["keywords in any case", "a AND b Or c", ["a", "b", "c"]],
  ["strings with braces and names", 'label_replace(a, "dst", "}x{", "src", "y")', ["a"]],
  ["a regex matcher", 'a{reason!~"permission|vanished"}', ["a"]],
  [
    "Grafana variables",
    'rate(a{instance=~"$instance"}[$__rate_interval]) / ${b_var} + c[[interval]]',
    ["a", "c"],
  ],
  ["the same name twice, sorted", "b + a + b", ["a", "b"]],
  ["inf and nan are numbers", "a > Inf or b != NaN", ["a", "b"]],
  ["a function with space before (", "abs (a)", ["a"]],
  ["a multi-line expression", "rate(a[5m])\n/ (rate(b[5m]) > 0)", ["a", "b"]],
];

for (const [what, expr, expected] of CASES) {
  Deno.test(`metricNames() reads ${what}`, () => {
    deepStrictEqual(metricNames(expr), expected);
  });
}

const VARIABLE_CASES: [string, string[]][] = [
  ["label_values(kvm_exporter_build_info, instance)", ["kvm_exporter_build_info"]],
  ['label_values(kvm_vm_info{instance=~"$instance"}, domain)', ["kvm_vm_info"]],
  ["label_values(instance)", []],
  ["label_names()", []],
  ["query_result(topk(5, rate(a[5m])))", ["a"]],
];

for (const [query, expected] of VARIABLE_CASES) {
  Deno.test(`variableMetricNames() reads ${query}`, () => {
    deepStrictEqual(variableMetricNames(query), expected);
  });
}
