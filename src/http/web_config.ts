/**
 * The web configuration file (`--web.config.file`) in the Prometheus exporter-toolkit format:
 * TLS, basic auth users, response headers. Keys the Deno server cannot honour are rejected at
 * their `path:line:col`, never ignored.
 *
 * @module
 */

import { ConfigError } from "../config/config_error.ts";
import { NodeProblem, parseYamlTree, type YamlNode } from "../config/vm_config.ts";
import { describeReadFailure, readRegularFile } from "../system/bounded_read.ts";

/** The TLS certificate and key, as PEM text. */
export interface TlsSettings {
  /** The certificate chain (PEM). */
  cert: string;
  /** The private key (PEM). */
  key: string;
  /** Files the PEM came from (resolved), watched for changes. */
  files: string[];
}

/** The checked content of a web configuration file. */
export interface WebConfig {
  /** TLS, or undefined for plain HTTP. */
  tls: TlsSettings | undefined;
  /** Basic auth users and their bcrypt hashes; empty means no auth. */
  users: Map<string, string>;
  /** Headers added to every response, names as written. */
  headers: [string, string][];
}

/** The config without a file: plain HTTP, no auth, no extra headers. */
export const EMPTY_WEB_CONFIG: WebConfig = { tls: undefined, users: new Map(), headers: [] };

/** Largest web config file read. */
const MAX_FILE_BYTES = 1_048_576;

/** Largest PEM file read: a long certificate chain is some tens of KiB. */
export const MAX_PEM_BYTES = 1_048_576;

const UNSUPPORTED_TLS: Record<string, string> = {
  client_ca: "Deno's TLS server cannot verify client certificates",
  client_ca_file: "Deno's TLS server cannot verify client certificates",
  client_allowed_sans: "Deno's TLS server cannot verify client certificates",
  cipher_suites:
    "Deno's TLS server cannot restrict cipher suites (it offers rustls' safe defaults)",
  prefer_server_cipher_suites: "Deno's TLS server cannot restrict cipher suites",
  curve_preferences: "Deno's TLS server cannot choose curves",
  min_version: "Deno's TLS server cannot pin TLS versions (it offers TLS 1.2 and 1.3)",
  max_version: "Deno's TLS server cannot pin TLS versions (it offers TLS 1.2 and 1.3)",
};

/** Headers exporter-toolkit lets a user set, with the values it accepts (undefined: any). */
const ALLOWED_HEADERS: Record<string, readonly string[] | undefined> = {
  "content-security-policy": undefined,
  "x-frame-options": ["deny", "sameorigin"],
  "x-content-type-options": ["nosniff"],
  "x-xss-protection": undefined,
  "strict-transport-security": undefined,
};

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/** What `checkWebConfig` needs from the file system: reading PEM files next to the config. */
export type ReadFile = (path: string) => Promise<string>;

/**
 * Parses and checks a web configuration file's text, reading the PEM files it names.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseWebConfig } from "./web_config.ts";
 * const config = await parseWebConfig("http_server_config:\n  headers:\n    X-Frame-Options: deny\n", {
 *   path: "web.yml",
 *   readFile: () => Promise.reject(new Error("no files")),
 * });
 * assert.deepEqual(config.headers, [["X-Frame-Options", "deny"]]);
 * ```
 *
 * @param text The file's content.
 * @param options `path` of the file (errors and relative PEM paths), `readFile` for PEM files.
 * @returns The checked config.
 * @throws {ConfigError} At the offending node: bad YAML, an unknown or unsupported key, a bad
 *   hash, a PEM file that cannot be read.
 */
export async function parseWebConfig(
  text: string,
  options: { path: string; readFile: ReadFile },
): Promise<WebConfig> {
  try {
    return await checkRoot(parseYamlTree(text), options);
  } catch (error) {
    if (!(error instanceof NodeProblem)) throw error;
    throw new ConfigError(error.message, {
      path: options.path,
      line: error.line,
      column: error.column,
    });
  }
}

/**
 * Reads and checks a web configuration file.
 *
 * @param path The file.
 * @returns The checked config.
 * @throws {ConfigError} When the content is invalid.
 * @throws {Error} When the file cannot be read or is too large.
 */
export async function readWebConfig(path: string): Promise<WebConfig> {
  const text = await readText(path, MAX_FILE_BYTES).catch((error) => {
    throw new Error(
      `Cannot read web config ${JSON.stringify(path)}: ${describeReadFailure(error)}`,
    );
  });
  return await parseWebConfig(text, { path, readFile: (file) => readText(file, MAX_PEM_BYTES) });
}

/** A regular file's text, read without blocking (see `readRegularFile`). */
async function readText(path: string, maxBytes: number): Promise<string> {
  return new TextDecoder().decode(await readRegularFile(path, { maxBytes }));
}

/** Why a file could not be read, in a few words. */
async function checkRoot(
  root: YamlNode | undefined,
  options: { path: string; readFile: ReadFile },
): Promise<WebConfig> {
  if (root === undefined || root.kind === null) return EMPTY_WEB_CONFIG;
  const config: WebConfig = { tls: undefined, users: new Map(), headers: [] };
  for (const [key, value] of mappingPairs(root, "the web config")) {
    if (key.value === "tls_server_config") config.tls = await checkTls(value, options);
    else if (key.value === "basic_auth_users") config.users = checkUsers(value);
    else if (key.value === "http_server_config") config.headers = checkHttp(value);
    else if (key.value === "rate_limit") {
      throw new NodeProblem(key, 'key "rate_limit" is not supported: use --web.max-requests');
    } else throw new NodeProblem(key, `unknown key ${JSON.stringify(key.value)}`);
  }
  return config;
}

function mappingPairs(node: YamlNode, what: string): [YamlNode, YamlNode][] {
  if (node.kind === null) return [];
  if (node.kind !== "mapping") throw new NodeProblem(node, `${what} must be a mapping`);
  return node.pairs;
}

function stringValue(node: YamlNode, key: string): string {
  if (node.kind !== "scalar" || typeof node.value !== "string") {
    throw new NodeProblem(node, `${key} must be a string`);
  }
  return node.value;
}

async function checkTls(
  node: YamlNode,
  options: { path: string; readFile: ReadFile },
): Promise<TlsSettings | undefined> {
  const pem: Record<string, { text: string; file?: string; node: YamlNode }> = {};
  // Keys that cannot be honoured are named first, before any file is read.
  for (const [key] of mappingPairs(node, "tls_server_config")) {
    const reason = UNSUPPORTED_TLS[String(key.value)];
    if (reason !== undefined) {
      throw new NodeProblem(key, `key ${JSON.stringify(key.value)} is not supported: ${reason}`);
    }
  }
  for (const [key, value] of mappingPairs(node, "tls_server_config")) {
    const name = String(key.value);
    if (name === "client_auth_type") {
      const type = stringValue(value, name);
      if (type === "NoClientCert") continue;
      throw new NodeProblem(
        value,
        `client_auth_type ${JSON.stringify(type)} is not supported: ${UNSUPPORTED_TLS.client_ca}`,
      );
    }
    if (name === "cert" || name === "key") {
      pem[name] = { text: stringValue(value, name), node: key };
    } else if (name === "cert_file" || name === "key_file") {
      const file = resolveFrom(options.path, stringValue(value, name));
      const text = await options.readFile(file).catch((error) => {
        throw new NodeProblem(
          value,
          `cannot read ${name} ${JSON.stringify(file)}: ${describeReadFailure(error)}`,
        );
      });
      const kind = name === "cert_file" ? "cert" : "key";
      if (pem[kind] !== undefined) {
        throw new NodeProblem(key, `${name} and ${kind} are both set: give one`);
      }
      pem[kind] = { text, file, node: value };
    } else throw new NodeProblem(key, `unknown key ${JSON.stringify(name)} in tls_server_config`);
  }
  const { cert, key } = pem;
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new NodeProblem(node, "tls_server_config needs a certificate and a key");
  }
  if (!cert.text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new NodeProblem(cert.node, "the certificate is not PEM (no BEGIN CERTIFICATE)");
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.text)) {
    throw new NodeProblem(key.node, "the key is not PEM (no BEGIN PRIVATE KEY)");
  }
  const files = [cert.file, key.file].filter((f): f is string => f !== undefined);
  return { cert: cert.text, key: key.text, files };
}

/** A PEM path relative to the config file's directory, as exporter-toolkit resolves it. */
function resolveFrom(configPath: string, file: string): string {
  if (file.startsWith("/")) return file;
  const slash = configPath.lastIndexOf("/");
  return slash === -1 ? file : `${configPath.slice(0, slash + 1)}${file}`;
}

function checkUsers(node: YamlNode): Map<string, string> {
  const users = new Map<string, string>();
  for (const [key, value] of mappingPairs(node, "basic_auth_users")) {
    const user = String(key.value);
    if (user === "" || user.includes(":")) {
      throw new NodeProblem(key, `user name ${JSON.stringify(user)} must be non-empty without ":"`);
    }
    const hash = stringValue(value, `the password hash of ${JSON.stringify(user)}`);
    const match = BCRYPT.exec(hash);
    if (match === null || Number(match[1]) < 4 || Number(match[1]) > 31) {
      throw new NodeProblem(
        value,
        `the password of ${
          JSON.stringify(user)
        } is not a bcrypt hash ($2y$, $2b$ or $2a$; see htpasswd -nBC 10)`,
      );
    }
    users.set(user, hash);
  }
  return users;
}

function checkHttp(node: YamlNode): [string, string][] {
  const headers: [string, string][] = [];
  for (const [key, value] of mappingPairs(node, "http_server_config")) {
    if (key.value === "http2") {
      if (value.value === false) continue;
      throw new NodeProblem(value, "http2 is not supported: the server speaks HTTP/1.1; set false");
    }
    if (key.value !== "headers") {
      throw new NodeProblem(key, `unknown key ${JSON.stringify(key.value)} in http_server_config`);
    }
    for (const [name, text] of mappingPairs(value, "headers")) {
      const header = checkHeader(name, text);
      if (header[1] !== "") headers.push(header); // Blank means unset, as in exporter-toolkit.
    }
  }
  return headers;
}

function checkHeader(nameNode: YamlNode, valueNode: YamlNode): [string, string] {
  const name = String(nameNode.value);
  const lower = name.toLowerCase();
  if (!(lower in ALLOWED_HEADERS)) {
    throw new NodeProblem(
      nameNode,
      `header ${JSON.stringify(name)} cannot be set: only ${
        Object.keys(ALLOWED_HEADERS).join(", ")
      } can`,
    );
  }
  const value = valueNode.kind === null ? "" : stringValue(valueNode, `header ${name}`);
  if (value === "") return [name, value];
  const allowed = ALLOWED_HEADERS[lower];
  if (allowed !== undefined && !allowed.includes(value.toLowerCase())) {
    throw new NodeProblem(valueNode, `header ${name} must be one of ${allowed.join(", ")}`);
  }
  if (/[\r\n\0]/.test(value)) throw new NodeProblem(valueNode, `header ${name} must be one line`);
  return [name, value];
}
