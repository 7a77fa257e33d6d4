/**
 * How kvm_stat types a stat: by the catalog or, for a stat it does not know,
 * by the file's mode, looked up once per name.
 *
 * @module
 */

import { catalogType } from "../stats/catalog.ts";
import type { StatType } from "../stats/stat.ts";
import { typeFromMode } from "../stats/stat_type.ts";
import type { FileSystem } from "../system/file_system.ts";

/** Names whose mode is kept, at most. */
const MODE_CACHE_SIZE = 1024;

/** Types stats, keeping the mode of the names the catalog lacks. */
export class StatTyping {
  readonly #fs: FileSystem;
  // Only stats the catalog does not know cost a stat() call, once per name: KVM gives a stat the
  // same mode at every level. Names come from the kernel, so the cache stays small; it is capped
  // all the same.
  readonly #modeTypes = new Map<string, StatType>();

  /**
   * Creates a typing with no mode looked up yet.
   *
   * @param fs Where modes are looked up.
   */
  constructor(fs: FileSystem) {
    this.#fs = fs;
  }

  /**
   * The stat's type when known without a look at its file.
   *
   * @param name The stat's file name.
   * @returns Its type, or undefined when its file's mode must say.
   */
  known(name: string): StatType | undefined {
    return catalogType(name) ?? this.#modeTypes.get(name);
  }

  /**
   * The stat's type from its file's mode.
   *
   * @param file The stat file's name and path.
   * @returns Its type (untyped when the mode cannot be read).
   */
  async fromFile(file: { name: string; path: string }): Promise<StatType> {
    const mode = await this.#fs.mode(file.path);
    const type = typeFromMode(file.name, mode);
    if (mode !== undefined && this.#modeTypes.size < MODE_CACHE_SIZE) {
      this.#modeTypes.set(file.name, type);
    }
    return type;
  }
}
