/**
 * Reads OpenStack Nova's metadata from a libvirt domain XML: the instance's
 * display name, its project and user, and its flavor. Nova writes it as
 *
 * ```xml
 * <metadata>
 *   <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
 *     <nova:name>web-1</nova:name>
 *     <nova:flavor name="m1.small">...</nova:flavor>
 *     <nova:owner>
 *       <nova:user uuid="...">alice</nova:user>
 *       <nova:project uuid="...">demo</nova:project>
 *     </nova:owner>
 *   </nova:instance>
 * </metadata>
 * ```
 *
 * The namespace's version (1.0, 1.1, 1.2) varies and so may the prefix: the
 * element is matched by namespace URI (`domain_xml.ts` reads the XML). Pure.
 *
 * @module
 */

import { parseDomainXml, type XmlElement } from "./domain_xml.ts";

export { MAX_DOMAIN_XML_BYTES } from "./domain_xml.ts";

/** Nova's namespace URIs start with this. */
export const NOVA_NAMESPACE_PREFIX = "http://openstack.org/xmlns/libvirt/nova/";

/** What Nova's metadata says about an instance; absent fields are missing in the XML. */
export interface NovaMetadata {
  /** `<nova:name>`: the display name users gave the instance. */
  name?: string;
  /** `<nova:owner><nova:project>` text: the project's name. */
  projectName?: string;
  /** `<nova:project uuid=...>`. */
  projectUuid?: string;
  /** `<nova:owner><nova:user>` text: the user's name. */
  userName?: string;
  /** `<nova:user uuid=...>`. */
  userUuid?: string;
  /** `<nova:flavor name=...>`. */
  flavorName?: string;
}

/**
 * Finds Nova's metadata in a domain XML.
 *
 * @example Read the project of an instance
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { parseNovaMetadata } from "./nova_metadata.ts";
 *
 * const xml = `<domain><metadata><n:instance xmlns:n="http://openstack.org/xmlns/libvirt/nova/1.1">
 *   <n:owner><n:project uuid="p1">demo</n:project></n:owner></n:instance></metadata></domain>`;
 * strictEqual(parseNovaMetadata(xml)?.projectName, "demo");
 * ```
 *
 * @param xml The domain XML.
 * @returns The metadata, or undefined when the domain has no `<nova:instance>`.
 * @throws {SyntaxError} If the XML is malformed (with `line:col`).
 * @throws {RangeError} If the XML is larger than `MAX_DOMAIN_XML_BYTES`.
 */
export function parseNovaMetadata(xml: string): NovaMetadata | undefined {
  return novaMetadataOf(parseDomainXml(xml));
}

/**
 * Finds Nova's metadata in a parsed domain XML.
 *
 * @param root The XML's root element.
 * @returns The metadata, or undefined when the domain has no `<nova:instance>`.
 */
export function novaMetadataOf(root: XmlElement): NovaMetadata | undefined {
  const metadata = root.name === "domain"
    ? root.children.find((child) => child.name === "metadata" && child.namespace === "")
    : undefined;
  const instance = metadata?.children.find(isNova("instance"));
  if (instance === undefined) return undefined;
  const result: NovaMetadata = {};
  const name = instance.children.find(isNova("name"));
  if (name !== undefined) result.name = name.text.trim();
  const flavor = instance.children.find(isNova("flavor"))?.attributes.get("name");
  if (flavor !== undefined) result.flavorName = flavor;
  const owner = instance.children.find(isNova("owner"));
  const project = owner?.children.find(isNova("project"));
  if (project !== undefined) {
    result.projectName = project.text.trim();
    const uuid = project.attributes.get("uuid");
    if (uuid !== undefined) result.projectUuid = uuid;
  }
  const user = owner?.children.find(isNova("user"));
  if (user !== undefined) {
    result.userName = user.text.trim();
    const uuid = user.attributes.get("uuid");
    if (uuid !== undefined) result.userUuid = uuid;
  }
  return result;
}

function isNova(name: string): (element: XmlElement) => boolean {
  return (element) => element.name === name && element.namespace.startsWith(NOVA_NAMESPACE_PREFIX);
}
