/**
 * A small XML reader for libvirt's generated domain XML: elements,
 * attributes, text, the five named entities and character references,
 * comments, CDATA, processing instructions; no DTD; depth and size bounded.
 * Pure. Nova's metadata (`nova_metadata.ts`) and the devices
 * (`domain_devices.ts`) are read from its tree.
 *
 * @module
 */

/** Largest domain XML accepted: libvirt's own string limit (`REMOTE_STRING_MAX`). */
export const MAX_DOMAIN_XML_BYTES = 4194304;

const MAX_DEPTH = 256;

/** An element of the parsed XML. */
export interface XmlElement {
  /** Namespace URI, `""` for none. */
  namespace: string;
  /** Local name. */
  name: string;
  /** Attributes by name (namespace declarations excluded). */
  attributes: Map<string, string>;
  /** Child elements in order. */
  children: XmlElement[];
  /** The text content, entities decoded. */
  text: string;
}

/**
 * Parses a domain XML into its root element.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDomainXml } from "./domain_xml.ts";
 * assert.equal(parseDomainXml("<domain><name>web</name></domain>").children[0]?.text, "web");
 * ```
 *
 * @param xml The domain XML.
 * @returns The root element.
 * @throws {SyntaxError} If the XML is malformed (with `line:col`).
 * @throws {RangeError} If the XML is larger than {@linkcode MAX_DOMAIN_XML_BYTES}.
 */
export function parseDomainXml(xml: string): XmlElement {
  if (xml.length > MAX_DOMAIN_XML_BYTES) {
    throw new RangeError(
      `Domain XML too large: ${xml.length} characters, the limit is ${MAX_DOMAIN_XML_BYTES}`,
    );
  }
  return parseXml(xml);
}

/** Where in the text an offset is, as `line:col` (1-based). */
function position(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return `${line}:${offset - before.lastIndexOf("\n")}`;
}

interface OpenElement {
  element: XmlElement;
  qualifiedName: string;
  /** Prefix → namespace URI in scope ("" for the default namespace). */
  namespaces: Map<string, string>;
}

/**
 * Parses an XML document into its root element.
 *
 * @param text The document.
 * @returns The root element.
 * @throws {SyntaxError} With `line:col` where the text is not well-formed.
 */
function parseXml(text: string): XmlElement {
  const stack: OpenElement[] = [];
  let root: XmlElement | undefined;
  let i = 0;
  const fail = (what: string, at = i): never => {
    throw new SyntaxError(`Invalid domain XML at ${position(text, at)}: ${what}`);
  };
  while (i < text.length) {
    const lt = text.indexOf("<", i);
    const textEnd = lt === -1 ? text.length : lt;
    if (textEnd > i) {
      const chunk = decodeEntities(text.slice(i, textEnd), (what) => fail(what, i));
      const open = stack.at(-1);
      if (open !== undefined) open.element.text += chunk;
      else if (chunk.trim() !== "") fail("text outside the root element");
    }
    if (lt === -1) break;
    i = lt;
    if (text.startsWith("<!--", i)) i = skipPast(text, i, "-->", fail);
    else if (text.startsWith("<![CDATA[", i)) {
      const end = skipPast(text, i, "]]>", fail);
      const open = stack.at(-1) ?? fail("CDATA outside the root element");
      open.element.text += text.slice(i + 9, end - 3);
      i = end;
    } else if (text.startsWith("<?", i)) i = skipPast(text, i, "?>", fail);
    else if (text.startsWith("<!", i)) fail("a DTD is not accepted");
    else if (text.startsWith("</", i)) {
      const end = text.indexOf(">", i);
      if (end === -1) fail("unterminated end tag");
      const name = text.slice(i + 2, end).trim();
      const open = stack.pop();
      if (open === undefined || open.qualifiedName !== name) {
        fail(`end tag "${name}" does not match "${open?.qualifiedName ?? "nothing"}"`);
      }
      i = end + 1;
    } else {
      const tag = readStartTag(text, i, fail);
      const parent = stack.at(-1);
      const element = resolveElement(tag, parent?.namespaces ?? new Map(), (what) => fail(what));
      if (parent !== undefined) parent.element.children.push(element.element);
      else if (root !== undefined) fail("a second root element");
      else root = element.element;
      if (!tag.selfClosing) {
        if (stack.length >= MAX_DEPTH) fail(`elements nested deeper than ${MAX_DEPTH}`);
        stack.push(element);
      }
      i = tag.end;
    }
  }
  if (stack.length > 0) fail(`element "${stack.at(-1)!.qualifiedName}" is not closed`);
  return root ?? fail("no root element");
}

function skipPast(text: string, from: number, terminator: string, fail: (w: string) => never) {
  const end = text.indexOf(terminator, from);
  if (end === -1) fail(`"${text.slice(from, from + 4)}" is not terminated by "${terminator}"`);
  return end + terminator.length;
}

interface StartTag {
  qualifiedName: string;
  attributes: [string, string][];
  selfClosing: boolean;
  end: number;
}

const NAME = /[A-Za-z_][\w.:-]*/y;
const ATTRIBUTE = /\s+([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')/y;
const TAG_END = /\s*(\/?)>/y;

function readStartTag(text: string, at: number, fail: (w: string, at?: number) => never): StartTag {
  NAME.lastIndex = at + 1;
  const name = NAME.exec(text) ?? fail("invalid start tag", at);
  let i = NAME.lastIndex;
  const attributes: [string, string][] = [];
  while (true) {
    TAG_END.lastIndex = i;
    const end = TAG_END.exec(text);
    if (end !== null) {
      return {
        qualifiedName: name[0],
        attributes,
        selfClosing: end[1] === "/",
        end: TAG_END.lastIndex,
      };
    }
    ATTRIBUTE.lastIndex = i;
    const attribute = ATTRIBUTE.exec(text) ?? fail(`invalid attribute in "<${name[0]}"`, i);
    const raw = attribute[2] ?? attribute[3] ?? "";
    attributes.push([attribute[1]!, decodeEntities(raw, (what) => fail(what, i))]);
    i = ATTRIBUTE.lastIndex;
  }
}

function resolveElement(
  tag: StartTag,
  inherited: Map<string, string>,
  fail: (what: string) => never,
): OpenElement {
  let namespaces = inherited;
  const attributes = new Map<string, string>();
  for (const [name, value] of tag.attributes) {
    if (name === "xmlns" || name.startsWith("xmlns:")) {
      if (namespaces === inherited) namespaces = new Map(inherited);
      namespaces.set(name === "xmlns" ? "" : name.slice(6), value);
    } else attributes.set(name, value);
  }
  const colon = tag.qualifiedName.indexOf(":");
  const prefix = colon === -1 ? "" : tag.qualifiedName.slice(0, colon);
  const namespace = namespaces.get(prefix);
  if (namespace === undefined && prefix !== "") {
    fail(`namespace prefix "${prefix}" of "${tag.qualifiedName}" is not declared`);
  }
  return {
    element: {
      namespace: namespace ?? "",
      name: tag.qualifiedName.slice(colon + 1),
      attributes,
      children: [],
      text: "",
    },
    qualifiedName: tag.qualifiedName,
    namespaces,
  };
}

// A Map, not an object: "toString" or "valueOf" must not be found on a prototype.
const NAMED_ENTITIES: ReadonlyMap<string, string> = new Map([
  ["amp", "&"],
  ["lt", "<"],
  ["gt", ">"],
  ["quot", '"'],
  ["apos", "'"],
]);

function decodeEntities(text: string, fail: (what: string) => never): string {
  if (!text.includes("&")) return text;
  return text.replace(/&([^;&\s]{0,10});?/g, (match, entity: string) => {
    if (!match.endsWith(";")) fail(`unterminated entity "${match}"`);
    const named = NAMED_ENTITIES.get(entity);
    if (named !== undefined) return named;
    const code = /^#x[0-9a-fA-F]{1,6}$/.test(entity)
      ? parseInt(entity.slice(2), 16)
      : /^#[0-9]{1,7}$/.test(entity)
      ? parseInt(entity.slice(1), 10)
      : undefined;
    if (code === undefined || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return fail(`unknown entity "${match}"`);
    }
    return String.fromCodePoint(code);
  });
}
