/**
 * The files the Debian package writes to /etc are valid as installed, and the control file has
 * what dpkg needs.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { parseVmConfig } from "../../src/config/vm_config.ts";
import { EMPTY_WEB_CONFIG, parseWebConfig } from "../../src/http/web_config.ts";
import { CONFFILES, debControl, packagedVmYaml } from "../../tools/release.ts";
import { revision, version } from "../../tools/compile.ts";
import { REPO_ROOT } from "../support/exporter_process.ts";

const read = (path: string): Promise<string> => Deno.readTextFile(`${REPO_ROOT}/${path}`);

Deno.test("packagedVmYaml() is an empty vm.yaml that gives the example back when uncommented", async () => {
  const example = await read("vm.example.yaml");
  const packaged = packagedVmYaml(example);
  deepStrictEqual(parseVmConfig(packaged, "/etc/kvm_exporter/vm.yaml").entries, []);
  // After its two header lines, each line is the example's, commented out unless a comment.
  const lines = example.trimEnd().split("\n");
  const body = packaged.trimEnd().split("\n").slice(2);
  strictEqual(body.length, lines.length);
  const uncommented = body.map((line, i) => line === lines[i] ? line : line.replace(/^# /, ""))
    .join("\n");
  deepStrictEqual(
    parseVmConfig(uncommented, "vm.yaml").entries,
    parseVmConfig(example, "vm.example.yaml").entries,
  );
});

Deno.test("deploy/debian/web.yml as installed is a valid, empty web config", async () => {
  const config = await parseWebConfig(await read("deploy/debian/web.yml"), {
    path: "/etc/kvm_exporter/web.yml",
    readFile: () => Promise.reject(new Error("no file is named")),
  });
  deepStrictEqual(config, EMPTY_WEB_CONFIG);
});

Deno.test("debControl() has dpkg's fields, the version and a folded description", () => {
  const control = debControl({
    arch: "arm64",
    installedKiB: 98824,
    version: "0.1.0+git.7.0123456789ab",
    revision: "0123456789ab",
  });
  const fields = new Map(
    control.split("\n").filter((l) => /^[A-Z]/.test(l)).map((l) =>
      l.split(": ", 2) as [string, string]
    ),
  );
  for (
    const [key, value] of [["Package", "kvm-exporter"], ["Version", "0.1.0+git.7.0123456789ab"], [
      "Architecture",
      "arm64",
    ], ["Installed-Size", "98824"]]
  ) {
    strictEqual(fields.get(key!), value, key);
  }
  ok(fields.has("Maintainer") && fields.has("Description"));
  ok(
    control.split("\n").filter((l) => l !== "" && !/^[A-Z]/.test(l)).every((l) =>
      l.startsWith(" ")
    ),
  );
  ok(control.includes("0123456789ab"));
});

Deno.test("CONFFILES are the /etc files the unit and the start script read", async () => {
  const unit = await read("deploy/kvm_exporter.service");
  ok(unit.includes(`EnvironmentFile=-${CONFFILES[0]}`));
  ok(unit.includes(`--collector.vmmap.path=${CONFFILES[1]}`));
  ok((await read("deploy/debian/kvm_exporter.default")).includes(CONFFILES[2]!));
  ok(CONFFILES.every((f) => f.startsWith("/etc/")));
});

Deno.test("version() is this checkout's, from git: a v-tag on HEAD, else the commits after the last", async () => {
  const rev = await revision();
  const git = async (...args: string[]) =>
    new TextDecoder().decode(
      (await new Deno.Command("git", { args, cwd: REPO_ROOT, stdout: "piped" }).output()).stdout,
    ).trim();
  const described = await git("describe", "--tags", "--match", "v[0-9]*", "--long");
  const got = await version(rev);
  if (described === "") {
    strictEqual(got, `0.1.0+git.${await git("rev-list", "--count", "HEAD")}.${rev}`);
  } else {
    const [, tag, after] = /^v(.+)-(\d+)-g[0-9a-f]+$/.exec(described)!;
    strictEqual(got, after === "0" ? tag : `${tag}+git.${after}.${rev}`);
  }
  // dpkg's rules for an upstream version: a digit first, then alphanumerics and . + ~ -.
  ok(/^\d[A-Za-z0-9.+~-]*$/.test(got), got);
});

Deno.test("version() takes VERSION from the environment first (a Docker build arg)", async () => {
  Deno.env.set("VERSION", "9.8.7");
  try {
    strictEqual(await version("0123456789ab"), "9.8.7");
  } finally {
    Deno.env.delete("VERSION");
  }
});
