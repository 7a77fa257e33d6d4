/**
 * Real credentials for tests: a self-signed certificate from `openssl` and bcrypt hashes from
 * `htpasswd -nBC 10`, as an operator would make them.
 *
 * @module
 */

import { programPath } from "./program_path.ts";

/** Whether a program is on PATH. */
export function onPath(program: string): boolean {
  return programPath(program) !== undefined;
}

async function run(program: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(`${program} ${args.join(" ")} failed: ${decoder.decode(output.stderr)}`);
  }
  return decoder.decode(output.stdout);
}

/** Files of a self-signed certificate for `localhost`, 127.0.0.1 and ::1. */
export interface CertFiles {
  /** The certificate (PEM). */
  certFile: string;
  /** The private key (PEM). */
  keyFile: string;
}

/**
 * Makes a self-signed certificate with `openssl req -x509`.
 *
 * @param dir Where to write `NAME.crt` and `NAME.key`.
 * @param name File name stem. Default `server`.
 * @returns The two paths.
 */
export async function makeCert(dir: string, name = "server"): Promise<CertFiles> {
  const certFile = `${dir}/${name}.crt`;
  const keyFile = `${dir}/${name}.key`;
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ]);
  return { certFile, keyFile };
}

/**
 * A bcrypt hash of `password`, cost 10, from `htpasswd -nbBC 10` (`$2y$`).
 *
 * @param password The password.
 * @returns The hash.
 */
export async function bcryptHash(password: string): Promise<string> {
  const line = await run("htpasswd", ["-nbBC", "10", "user", password]);
  return line.trim().slice("user:".length);
}
