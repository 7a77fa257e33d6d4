// @deno-types="@types/js-yaml"
import { CORE_SCHEMA, type EventType, load, type State, YAMLException } from "js-yaml";
import { describeReadFailure, readRegularFile, TooLargeError } from "../system/bounded_read.ts";
import { ConfigError } from "./config_error.ts";

/** One VM entry of vm.yaml, in file order. */
export interface VmEntry {
  /** The mapping key under `vm_infos`; becomes the `domain` label. */
  name: string;
  /** QEMU pid. */
  pid?: number;
  /** `PID-FD` directory name in the KVM debugfs. */
  kvmDebugDir?: string;
  /** Extra labels from the optional `labels:` map, values stringified (default `{}`). */
  labels: Record<string, string>;
  /** Path of the QMP socket from the optional `qmp_socket:`. */
  qmpSocket?: string;
}

/** The parsed content of vm.yaml. */
export interface VmConfig {
  /** The VMs in file order. */
  entries: VmEntry[];
}

/**
 * Parses the text of vm.yaml and checks it.
 *
 * @param text The content of the file.
 * @param path The file's path, used in error messages.
 * @returns The VM entries in file order; none for an empty file.
 * @throws {ConfigError} On a YAML syntax error or an invalid entry, at the offending node.
 *
 * @example Usage
 * ```ts
 * import { parseVmConfig } from "./vm_config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseVmConfig("vm_infos:\n  web: {pid: 10620}\n", "vm.yaml");
 * assert.deepEqual(config.entries, [{ name: "web", pid: 10620, labels: {} }]);
 * ```
 */
export function parseVmConfig(text: string, path: string): VmConfig {
  try {
    return checkVmConfig(parseYamlTree(text));
  } catch (error) {
    if (!(error instanceof NodeProblem)) throw error;
    throw new ConfigError(error.message, { path, line: error.line, column: error.column });
  }
}

/**
 * Reads and parses vm.yaml.
 *
 * @param path The file's path.
 * @param options `explicit`: whether the user gave the path, which makes a missing file an error.
 * @returns The parsed file, or `undefined` when it does not exist and `explicit` is false.
 * @throws {ConfigError} When the content is invalid.
 * @throws {Error} When the file cannot be read, e.g. `Cannot read vm.yaml "x": no such file`.
 *
 * @example Usage
 * ```ts
 * import { readVmConfig } from "./vm_config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await readVmConfig("/nonexistent/vm.yaml", { explicit: false }), undefined);
 * ```
 */
export async function readVmConfig(
  path: string,
  options: { explicit: boolean },
): Promise<VmConfig | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readRegularFile(path, { maxBytes: MAX_VM_CONFIG_BYTES });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !options.explicit) return undefined;
    throw new Error(`Cannot read vm.yaml ${JSON.stringify(path)}: ${readFailure(error)}`, {
      cause: error,
    });
  }
  return parseVmConfig(decodeUtf8(bytes, path), path);
}

/** Largest vm.yaml accepted: 1 MiB, some 14,000 VMs in block style, parsed in about 0.3 s. */
export const MAX_VM_CONFIG_BYTES = 1024 * 1024;

/** Deepest nesting of collections accepted in vm.yaml; the format itself needs 4 levels. */
export const MAX_VM_CONFIG_DEPTH = 32;

/**
 * Decodes UTF-8, rejecting invalid bytes with their position rather than turning them into
 * U+FFFD (a VM name must be what the file says).
 *
 * @param bytes The file's content.
 * @param path The file's path, used in error messages.
 * @returns The text.
 * @throws {ConfigError} At the first invalid byte.
 *
 * @example Usage
 * ```ts
 * import { decodeUtf8 } from "./vm_config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => decodeUtf8(new Uint8Array([0x61, 0x0a, 0x62, 0xff]), "vm.yaml"),
 *   { message: "vm.yaml:2:2: invalid UTF-8: byte 0xff at offset 3" },
 * );
 * ```
 */
export function decodeUtf8(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    const lineStart = bytes.lastIndexOf(0x0a, offset - 1) + 1;
    let line = 1;
    for (let i = 0; i < lineStart; i++) if (bytes[i] === 0x0a) line++;
    const column = [...new TextDecoder().decode(bytes.subarray(lineStart, offset))].length + 1;
    const byte = (bytes[offset] ?? 0).toString(16).padStart(2, "0");
    throw new ConfigError(`invalid UTF-8: byte 0x${byte} at offset ${offset}`, {
      path,
      line,
      column,
    });
  }
}

/** The offset of the first byte that is not part of a well-formed UTF-8 sequence. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const [length, min, max] = b < 0x80
      ? [1, 0, 0]
      : b >= 0xc2 && b <= 0xdf
      ? [2, 0x80, 0xbf]
      : b === 0xe0
      ? [3, 0xa0, 0xbf]
      : b === 0xed
      ? [3, 0x80, 0x9f] // No surrogates.
      : b >= 0xe1 && b <= 0xef
      ? [3, 0x80, 0xbf]
      : b === 0xf0
      ? [4, 0x90, 0xbf]
      : b >= 0xf1 && b <= 0xf3
      ? [4, 0x80, 0xbf]
      : b === 0xf4
      ? [4, 0x80, 0x8f]
      : [0, 0, 0];
    if (length === 0) return i;
    // The second byte has the narrower range; the rest are plain continuation bytes.
    for (let k = 1; k < length; k++) {
      const c = bytes[i + k];
      const [lo, hi] = k === 1 ? [min, max] : [0x80, 0xbf];
      if (c === undefined || c < lo || c > hi) return i;
    }
    i += length;
  }
  return bytes.length;
}

/** Why a file could not be read, in one line. */
function readFailure(error: unknown): string {
  if (error instanceof TooLargeError) return `${error.message}, the most vm.yaml may hold`;
  return describeReadFailure(error);
}

// ---------------------------------------------------------------------------------------------
// Checking the positioned tree

const VM_KEYS = ["pid", "kvm_debug_dir", "labels", "qmp_socket"];
const RESERVED_LABELS = ["domain", "vcpu", "pid", "kvm_debug_dir", "name_source"];
const KVM_DEBUG_DIR = /^\d+-[^\s/]+$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A YAML node with the 1-based position of its first character. */
export interface YamlNode {
  kind: "scalar" | "sequence" | "mapping" | null;
  value: unknown;
  line: number;
  column: number;
  /** Key and value nodes of a mapping, in file order. */
  pairs: [YamlNode, YamlNode][];
}

/** A problem at a node; {@linkcode parseVmConfig} adds the path. */
export class NodeProblem extends Error {
  readonly line: number;
  readonly column: number;

  constructor(at: { line: number; column: number }, detail: string) {
    super(detail);
    this.line = at.line;
    this.column = at.column;
  }
}

/** A checked entry with the nodes that name its debugfs directory. */
interface CheckedVm {
  entry: VmEntry;
  pidNode?: YamlNode;
  dirNode?: YamlNode;
}

/** Checks the whole document. */
function checkVmConfig(root: YamlNode | undefined): VmConfig {
  if (root === undefined || root.value === null) return { entries: [] };
  if (root.kind !== "mapping") {
    throw new NodeProblem(
      root,
      `top level must be a mapping with key vm_infos, got ${describe(root)}`,
    );
  }
  let vmInfos: YamlNode | undefined;
  for (const [key, value] of root.pairs) {
    if (String(key.value) !== "vm_infos") {
      throw new NodeProblem(key, `unknown key ${quote(key.value)} (expected vm_infos)`);
    }
    vmInfos = value;
  }
  if (vmInfos === undefined || vmInfos.value === null) return { entries: [] };
  if (vmInfos.kind !== "mapping") {
    throw new NodeProblem(
      vmInfos,
      `vm_infos must be a mapping of VM names, got ${describe(vmInfos)}`,
    );
  }
  const vms = vmInfos.pairs.map(checkVm);
  checkUnique(vms);
  return { entries: vms.map((vm) => vm.entry) };
}

/** Checks one `name: {...}` pair of vm_infos. */
function checkVm([key, node]: [YamlNode, YamlNode]): CheckedVm {
  if (key.kind !== "scalar" || key.value === null) {
    throw new NodeProblem(key, `VM name must be a string, got ${describe(key)}`);
  }
  const name = String(key.value);
  if (name === "") throw new NodeProblem(key, "VM name must not be empty");
  if (name === "global") {
    throw new NodeProblem(key, 'VM name "global" is reserved for the sums over all VMs');
  }
  const vm = `VM ${quote(name)}`;
  if (node.kind !== "mapping") {
    throw new NodeProblem(node, `${vm} must be a mapping with pid and/or kvm_debug_dir`);
  }
  const checked: CheckedVm = { entry: { name, labels: {} } };
  for (const [field, value] of node.pairs) {
    const fieldName = String(field.value);
    const got = `got ${describe(value)}`;
    switch (fieldName) {
      case "pid":
        if (
          typeof value.value !== "number" || !Number.isSafeInteger(value.value) || value.value < 1
        ) {
          throw new NodeProblem(value, `pid of ${vm} must be a positive integer, ${got}`);
        }
        checked.entry.pid = value.value;
        checked.pidNode = value;
        break;
      case "kvm_debug_dir":
        if (typeof value.value !== "string" || !KVM_DEBUG_DIR.test(value.value)) {
          throw new NodeProblem(value, `kvm_debug_dir of ${vm} must look like "PID-FD", ${got}`);
        }
        checked.entry.kvmDebugDir = value.value;
        checked.dirNode = value;
        break;
      case "labels":
        checked.entry.labels = checkLabels(value, vm);
        break;
      case "qmp_socket":
        if (typeof value.value !== "string" || !value.value.startsWith("/")) {
          throw new NodeProblem(value, `qmp_socket of ${vm} must be an absolute path, ${got}`);
        }
        checked.entry.qmpSocket = value.value;
        break;
      default:
        throw new NodeProblem(
          field,
          `unknown key ${quote(fieldName)} in ${vm} (expected one of ${VM_KEYS.join(", ")})`,
        );
    }
  }
  const { pid, kvmDebugDir } = checked.entry;
  if (pid === undefined && kvmDebugDir === undefined) {
    throw new NodeProblem(key, `${vm} must have pid and/or kvm_debug_dir`);
  }
  if (checked.dirNode && kvmDebugDir !== undefined && pid !== undefined) {
    if (Number(kvmDebugDir.slice(0, kvmDebugDir.indexOf("-"))) !== pid) {
      throw new NodeProblem(
        checked.dirNode,
        `kvm_debug_dir ${quote(kvmDebugDir)} of ${vm} does not start with its pid ${pid}`,
      );
    }
  }
  return checked;
}

/** Checks a `labels:` map of `vm`; an empty value means no labels. */
function checkLabels(node: YamlNode, vm: string): Record<string, string> {
  if (node.value === null) return {};
  if (node.kind !== "mapping") {
    throw new NodeProblem(node, `labels of ${vm} must be a mapping, got ${describe(node)}`);
  }
  const labels: Record<string, string> = {};
  for (const [key, value] of node.pairs) {
    const label = String(key.value);
    const what = `label name ${quote(label)} of ${vm}`;
    if (!LABEL_NAME.test(label)) {
      throw new NodeProblem(key, `${what} must match [a-zA-Z_][a-zA-Z0-9_]*`);
    }
    if (label.startsWith("__")) throw new NodeProblem(key, `${what} must not start with "__"`);
    if (RESERVED_LABELS.includes(label)) throw new NodeProblem(key, `${what} is reserved`);
    if (!["string", "number", "boolean"].includes(typeof value.value)) {
      throw new NodeProblem(
        value,
        `label ${quote(label)} of ${vm} must be a string, number or boolean, got ${
          describe(value)
        }`,
      );
    }
    labels[label] = String(value.value);
  }
  return labels;
}

/**
 * Rejects a VM that names the same debugfs directory as an earlier one: one map per key, so a
 * file of n VMs is checked in O(n).
 */
function checkUnique(vms: readonly CheckedVm[]): void {
  const byDir = new Map<string, CheckedVm>();
  const byPid = new Map<number, CheckedVm>();
  for (const vm of vms) {
    const { name, pid, kvmDebugDir } = vm.entry;
    const same = `VM ${quote(name)} has the same`;
    if (vm.dirNode && kvmDebugDir !== undefined) {
      const other = byDir.get(kvmDebugDir);
      if (other?.dirNode) {
        throw new NodeProblem(
          vm.dirNode,
          `${same} kvm_debug_dir ${quote(kvmDebugDir)} as VM ${
            quote(other.entry.name)
          } (line ${other.dirNode.line})`,
        );
      }
      byDir.set(kvmDebugDir, vm);
    } else if (vm.pidNode && pid !== undefined) {
      // Only VMs named by pid alone clash by pid: a dir is more precise than its pid.
      const other = byPid.get(pid);
      if (other?.pidNode) {
        throw new NodeProblem(
          vm.pidNode,
          `${same} pid ${pid} as VM ${quote(other.entry.name)} (line ${other.pidNode.line})`,
        );
      }
      byPid.set(pid, vm);
    }
  }
}

/** A node's value for error messages: strings quoted, collections by kind. */
function describe(node: YamlNode): string {
  if (node.kind === "mapping" || node.kind === "sequence") return `a ${node.kind}`;
  if (typeof node.value === "string") return quote(node.value);
  return String(node.value);
}

/** A value as a double-quoted string; escapes keep it on one line. */
function quote(value: unknown): string {
  return JSON.stringify(String(value));
}

/** The first line of a message. */
function firstLine(message: string): string {
  return message.split(/\r\n|\r|\n/, 1)[0] ?? "";
}

// ---------------------------------------------------------------------------------------------
// Building the positioned tree from js-yaml's listener events

/** A node being composed: where its text starts and the nodes composed inside it so far. */
interface OpenNode {
  offset: number;
  line: number;
  column: number;
  children: YamlNode[];
}

/**
 * Loads YAML text (core schema: no timestamps, no merge keys) into a tree of positioned nodes.
 *
 * js-yaml fires `open` when it starts composing a node and `close` when the node is done, nested
 * like the nodes; a mapping's children are its keys and values in turn.
 */
export function parseYamlTree(text: string): YamlNode | undefined {
  const stack: OpenNode[] = [];
  let root: YamlNode | undefined;
  function listener(event: EventType, state: State): void {
    if (event === "open") {
      const start = startOf(state);
      // js-yaml recurses once per level: stop before a deep file overflows the call stack.
      if (stack.length >= MAX_VM_CONFIG_DEPTH) {
        throw new NodeProblem(start, `nesting deeper than ${MAX_VM_CONFIG_DEPTH} levels`);
      }
      stack.push({ ...start, children: [] });
      return;
    }
    const open = stack.pop();
    if (open === undefined) return;
    const node = closeNode(open, state);
    const parent = stack.at(-1);
    if (parent !== undefined) parent.children.push(node);
    else if (root === undefined) root = node;
    else throw new NodeProblem(node, "expected a single document in the stream, but found more");
  }
  try {
    load(text, { schema: CORE_SCHEMA, listener });
  } catch (error) {
    if (!(error instanceof YAMLException)) throw error;
    const at = { line: error.mark.line + 1, column: error.mark.column + 1 };
    throw new NodeProblem(at, firstLine(error.reason));
  }
  return root;
}

/**
 * Where the node that js-yaml starts composing begins: `open` fires before the spaces, line
 * breaks and comments in front of a value are skipped, so skip them here.
 */
function startOf(state: State): { offset: number; line: number; column: number } {
  const input = state.input;
  let { position, line, lineStart } = state;
  for (;;) {
    const char = input[position];
    if (char === " " || char === "\t") {
      position += 1;
    } else if (char === "\n" || char === "\r") {
      position += input.startsWith("\r\n", position) ? 2 : 1;
      line += 1;
      lineStart = position;
    } else if (char === "#") {
      while (position < input.length && input[position] !== "\n" && input[position] !== "\r") {
        position += 1;
      }
    } else {
      return { offset: position, line: line + 1, column: position - lineStart + 1 };
    }
  }
}

/** Builds the node that js-yaml just composed from the nodes composed inside it. */
function closeNode(open: OpenNode, state: State): YamlNode {
  const kind = state.kind as YamlNode["kind"];
  const node: YamlNode = {
    kind,
    value: state.result,
    line: open.line,
    column: open.column,
    pairs: [],
  };
  if (state.input[open.offset] === "*") throw new NodeProblem(node, "aliases are not supported");
  // In block context js-yaml first tries to read a block mapping, whose first key is then the
  // whole node: keep the inner node.
  const first = open.children[0];
  if (
    open.children.length === 1 && first && first.kind === kind && first.value === state.result
  ) {
    return first;
  }
  if (kind !== "mapping") return node;
  // A block mapping may end with a failed attempt to read one more key: an empty node.
  const children = open.children.length % 2 === 1 && open.children.at(-1)?.kind === null
    ? open.children.slice(0, -1)
    : open.children;
  if (children.length !== 2 * Object.keys(state.result).length) {
    throw new NodeProblem(node, "mapping keys without a value are not supported");
  }
  for (let index = 0; index < children.length; index += 2) {
    const key = children[index] as YamlNode;
    const value = children[index + 1] as YamlNode;
    // An empty value has no text of its own: point at its key.
    node.pairs.push([
      key,
      value.kind === null ? { ...value, line: key.line, column: key.column } : value,
    ]);
  }
  return node;
}
