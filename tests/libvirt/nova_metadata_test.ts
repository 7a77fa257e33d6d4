import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { MAX_DOMAIN_XML_BYTES, parseNovaMetadata } from "../../src/libvirt/nova_metadata.ts";

// As Nova writes it (nova/virt/libvirt/config.py, LibvirtConfigGuestMetaNovaInstance).
const NOVA_XML = `<domain type='kvm' id='3'>
  <name>instance-0000002a</name>
  <uuid>6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b21</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="27.1.0"/>
      <nova:name>web-1 &amp; co</nova:name>
      <nova:creationTime>2026-11-25 12:00:00</nova:creationTime>
      <nova:flavor name="m1.tiny">
        <nova:memory>512</nova:memory>
        <nova:vcpus>1</nova:vcpus>
      </nova:flavor>
      <nova:owner>
        <nova:user uuid="u-1">alice</nova:user>
        <nova:project uuid="p-2">demo</nova:project>
      </nova:owner>
      <nova:root type="image" uuid="i-3"/>
    </nova:instance>
  </metadata>
  <memory unit='KiB'>524288</memory>
  <devices><!-- a comment with <tags> --><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>
`;

const FULL = {
  name: "web-1 & co",
  flavorName: "m1.tiny",
  userName: "alice",
  userUuid: "u-1",
  projectName: "demo",
  projectUuid: "p-2",
};

Deno.test("parseNovaMetadata() reads name, project, user and flavor", async (t) => {
  const cases: { what: string; xml: string; expected: unknown }[] = [
    { what: "Nova 1.1 as written by nova", xml: NOVA_XML, expected: FULL },
    {
      what: "another prefix and version 1.2",
      xml: NOVA_XML.replaceAll("nova:", "n:").replace("xmlns:nova=", "xmlns:n=").replace(
        "nova/1.1",
        "nova/1.2",
      ),
      expected: FULL,
    },
    {
      what: "default namespace on the instance",
      xml: `<domain><metadata><instance xmlns="http://openstack.org/xmlns/libvirt/nova/1.0">
        <name>x</name></instance></metadata></domain>`,
      expected: { name: "x" },
    },
    {
      what: "no metadata",
      xml: "<domain type='kvm'><name>plain</name></domain>",
      expected: undefined,
    },
    {
      what: "other metadata only",
      xml: `<domain><metadata><app:x xmlns:app="http://example.com/app"><app:name>no</app:name>
        </app:x></metadata></domain>`,
      expected: undefined,
    },
    {
      what: "nova:instance outside <metadata> is not Nova's",
      xml:
        `<domain><devices><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
        <nova:name>no</nova:name></nova:instance></devices></domain>`,
      expected: undefined,
    },
    {
      what: "a look-alike namespace is not Nova's",
      xml: `<domain><metadata><nova:instance xmlns:nova="http://example.com/nova">
        <nova:name>no</nova:name></nova:instance></metadata></domain>`,
      expected: undefined,
    },
    {
      what: "character references, CDATA and single quotes",
      xml:
        `<domain><metadata><nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>
        <nova:name>&#x4e2d;&#25991; <![CDATA[<b>]]></nova:name>
        <nova:flavor name='a&quot;b'/></nova:instance></metadata></domain>`,
      expected: { name: "中文 <b>", flavorName: 'a"b' },
    },
    {
      what: "an XML declaration first",
      xml: `<?xml version="1.0"?>\n<domain><metadata/></domain>`,
      expected: undefined,
    },
  ];
  for (const c of cases) {
    await t.step(c.what, () => deepStrictEqual(parseNovaMetadata(c.xml), c.expected));
  }
});

Deno.test("parseNovaMetadata() rejects malformed XML with line:col", async (t) => {
  const cases: { what: string; xml: string; message: RegExp }[] = [
    {
      what: "mismatched end tag",
      xml: "<domain>\n  <a></b></domain>",
      message: /at 2:6: end tag "b" does not match "a"/,
    },
    { what: "unclosed", xml: "<domain><a>", message: /element "a" is not closed/ },
    {
      what: "undeclared prefix",
      xml: "<domain><x:a/></domain>",
      message: /prefix "x" of "x:a" is not declared/,
    },
    { what: "unknown entity", xml: "<domain>&nbsp;</domain>", message: /unknown entity "&nbsp;"/ },
    { what: "bare ampersand", xml: "<domain>a & b</domain>", message: /unterminated entity/ },
    // Names an object inherits are no entities: a plain-object lookup would decode them to junk.
    ...["toString", "valueOf", "__proto__"].map((name) => ({
      what: `entity &${name};`,
      xml: `<domain>x&${name};</domain>`,
      message: new RegExp(`unknown entity "&${name};"`),
    })),
    {
      what: "inherited name in an attribute",
      xml: "<domain a='&valueOf;'/>",
      message: /unknown entity "&valueOf;"/,
    },
    { what: "DTD", xml: '<!DOCTYPE d [<!ENTITY x "y">]><domain/>', message: /DTD is not accepted/ },
    {
      what: "unterminated comment",
      xml: "<domain><!-- x</domain>",
      message: /not terminated by "-->"/,
    },
    { what: "two roots", xml: "<domain/><domain/>", message: /a second root element/ },
    { what: "empty", xml: "", message: /no root element/ },
    { what: "bad attribute", xml: "<domain a=b/>", message: /invalid attribute in "<domain"/ },
    { what: "text outside", xml: "junk<domain/>", message: /text outside the root element/ },
  ];
  for (const c of cases) {
    await t.step(
      c.what,
      () =>
        throws(
          () => parseNovaMetadata(c.xml),
          (e: unknown) =>
            e instanceof SyntaxError && /^Invalid domain XML at \d+:\d+: /.test(e.message) &&
            c.message.test(e.message),
        ),
    );
  }
});

Deno.test("parseNovaMetadata() bounds input size and nesting depth", () => {
  throws(() => parseNovaMetadata(" ".repeat(MAX_DOMAIN_XML_BYTES + 1)), RangeError);
  throws(() => parseNovaMetadata("<a>".repeat(300) + "</a>".repeat(300)), /nested deeper than 256/);
  strictEqual(parseNovaMetadata("<a>".repeat(200) + "</a>".repeat(200)), undefined);
});
