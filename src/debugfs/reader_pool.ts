/**
 * A small pool of reader Workers that read debugfs stat files off the main
 * thread, so that a scrape of a large host uses more than one core and the
 * event loop stays free for health checks and other requests.
 *
 * Each VM is given to one Worker when first seen (the one with the fewest
 * files) and stays there; the Worker keeps the VM's path list for the VM's
 * lifetime, so a scrape's messages name VMs, not files. A Worker that has not
 * answered by a scrape's deadline (a path swapped for a FIFO after listing
 * blocks its open) is abandoned: it is told to stop, replaced by a new one for
 * later scrapes, and ended as soon as it answers. At most
 * {@linkcode MAX_ABANDONED_WORKERS} may wait so; past that the pool refuses
 * to read and the caller reads without it.
 *
 * @module
 */

import {
  PROGRESS,
  type ReaderReply,
  type ReaderRequest,
  readerWorkerSource,
  type StatFilesResult,
} from "./reader_worker.ts";
import { sliceSpent, yieldToEventLoop } from "../system/event_loop_slice.ts";

/** Path lists sent between looks at the slice clock: a few ms of copying at 70 files per VM. */
const LISTS_PER_CHECK = 64;

/** Abandoned Workers (each a thread blocked in a syscall, ~10 MB) allowed at once. */
export const MAX_ABANDONED_WORKERS = 4;

/**
 * A Worker on the same file this long is taken for stuck by a read waiting its turn, which then
 * reads nothing rather than wait for the stuck read's deadline (a debugfs file takes microseconds).
 */
const STALL_MS = 200;

/**
 * A Worker in the same file this long at a deadline is stuck there, and the file is blamed; one
 * that began its file just now is only slow (a deadline shorter than the read), and a file blamed
 * for that would be read the slow async way for the rest of its VM's life.
 */
const BLAME_MS = 50;

/** {@linkcode PROGRESS.since} wraps here. */
const CLOCK_WRAP = 2 ** 31;

/** One VM to read: its key and its paths (the same array while the list is unchanged). */
export interface VmBatch {
  /** The VM's identity across scrapes (its `PID-FD` dir). */
  key: string;
  /** Its files; a new array object means a new list, sent to the Worker again. */
  paths: readonly string[];
}

/** A file a Worker was reading when the deadline passed. */
export interface StuckRead {
  /** The batch (index in the read's batches). */
  batch: number;
  /** The file (index in the batch's paths). */
  file: number;
  /** Settles when the abandoned Worker has answered and been ended, or the pool closed. */
  released: Promise<void>;
}

/** Options of {@linkcode ReaderPool.read}. */
export interface PoolReadOptions {
  /** The scrape's deadline. */
  signal: AbortSignal;
  /** Gets each batch's result, in batch order. */
  onResult(batch: number, result: StatFilesResult): void;
}

/** The part of a Worker the pool uses. */
export interface ReaderPort {
  /** Gets the reader's replies. */
  onmessage: ((event: MessageEvent<ReaderReply>) => void) | null;
  /** Called when the reader fails. */
  onerror: ((event: ErrorEvent) => void) | null;
  /** Sends a request. */
  postMessage(request: ReaderRequest): void;
  /** Ends the reader. */
  terminate(): void;
}

/**
 * Starts one reader.
 *
 * @param name The reader's name.
 * @returns Its port.
 */
export type StartReader = (name: string) => ReaderPort;

/**
 * Starts a reader Worker from the reader's source text in a blob: URL (a module file would need
 * read permission on it, which no documented run mode grants); it reads through Deno's file API.
 */
function workerStarter(): { start: StartReader; close(): void } {
  let source: string | undefined;
  return {
    start: (name) => {
      source ??= URL.createObjectURL(
        new Blob([readerWorkerSource()], { type: "application/javascript" }),
      );
      return new Worker(source, { type: "module", name });
    },
    close: () => {
      if (source !== undefined) URL.revokeObjectURL(source);
    },
  };
}

/** Options of the {@linkcode ReaderPool} constructor. */
export interface ReaderPoolOptions {
  /** Workers (at least 1). */
  size: number;
  /** Size cap of one stat file. */
  maxBytes: number;
  /** Abandoned Workers allowed at once. Default {@linkcode MAX_ABANDONED_WORKERS}. */
  maxAbandoned?: number;
  /** How long after its last read a Worker collects its heap; undefined: never. */
  collectAfterMs?: number | undefined;
  /** Starts a reader. Default: a Worker reading through Deno's file API. */
  start?: StartReader;
}

interface Slot {
  worker: ReaderPort;
  progress: Int32Array;
  /** Files of the VMs assigned to it. */
  files: number;
  /** Batches asked of it in the read in progress, in order. */
  asked: number[];
  /** Of those, the ones not answered yet. */
  pending: number[];
  /** Handles its replies during a read. */
  onReply: ((reply: ReaderReply) => void) | undefined;
}

interface VmState {
  slot: number;
  files: number;
  /** The list last sent, and to which Worker. */
  sent: readonly string[] | undefined;
  sentTo: ReaderPort | undefined;
}

/** One read in progress: results wait here until every earlier batch's has been delivered. */
class OrderedResults {
  readonly #results: (StatFilesResult | undefined)[];
  readonly #onResult: PoolReadOptions["onResult"];
  #next = 0;
  #received = 0;

  constructor(count: number, onResult: PoolReadOptions["onResult"]) {
    this.#results = new Array(count);
    this.#onResult = onResult;
  }

  get complete(): boolean {
    return this.#received === this.#results.length;
  }

  put(batch: number, result: StatFilesResult): void {
    this.#results[batch] = result;
    this.#received++;
    this.#deliver(false);
  }

  /** Delivers what arrived: in order, and at the deadline also past the gaps. */
  #deliver(all: boolean): void {
    for (; this.#next < this.#results.length; this.#next++) {
      const result = this.#results[this.#next];
      if (result === undefined) {
        if (all) continue;
        return;
      }
      this.#results[this.#next] = undefined;
      this.#onResult(this.#next, result);
    }
  }

  flush(): void {
    this.#deliver(true);
  }
}

/** The pool. Workers start on the first read; {@linkcode ReaderPool.close} ends them. */
export class ReaderPool {
  readonly #options: Required<Omit<ReaderPoolOptions, "start">>;
  readonly #starter: { start: StartReader; close(): void };
  readonly #slots: (Slot | undefined)[];
  readonly #vms = new Map<string, VmState>();
  readonly #abandoned = new Map<ReaderPort, () => void>();
  #started = false;
  #previous: Promise<unknown> = Promise.resolve();
  /** The slots asked in the read in progress. */
  #inFlight: readonly Slot[] = [];
  #closed = false;
  #collections = 0;

  /**
   * Creates a pool; no Worker starts yet.
   *
   * @param options Its size and the file size cap.
   */
  constructor(options: ReaderPoolOptions) {
    const { start, ...rest } = options;
    this.#options = { maxAbandoned: MAX_ABANDONED_WORKERS, collectAfterMs: undefined, ...rest };
    this.#starter = start === undefined ? workerStarter() : { start, close: () => {} };
    this.#slots = new Array(Math.max(1, options.size)).fill(undefined);
  }

  /** Whether a Worker has been started. */
  get started(): boolean {
    return this.#started;
  }

  /** Whether it reads: false once closed or when too many Workers are abandoned. */
  get usable(): boolean {
    return !this.#closed && this.#abandoned.size < this.#options.maxAbandoned;
  }

  /** Heap collections the Workers made once reads stopped. */
  get collections(): number {
    return this.#collections;
  }

  /** Abandoned Workers still waiting for their blocked read. */
  get abandoned(): number {
    return this.#abandoned.size;
  }

  /**
   * Forgets the VMs not in `present`; their Workers drop their lists.
   *
   * @param present The keys of the VMs that exist.
   */
  retain(present: ReadonlySet<string>): void {
    for (const [key, vm] of this.#vms) {
      if (present.has(key)) continue;
      this.#vms.delete(key);
      const slot = this.#slots[vm.slot];
      if (slot === undefined) continue;
      slot.files -= vm.files;
      if (vm.sentTo === slot.worker) this.#post(slot, { kind: "forget", vm: key });
    }
  }

  /**
   * Reads the batches' files in the Workers. One read at a time: a second waits for the first,
   * unless the first has a Worker stuck on one file (then the second reads nothing).
   *
   * @param batches The VMs to read.
   * @param options The deadline and where results go.
   * @returns The files that Workers were stuck on at the deadline (their Workers are replaced),
   *   or undefined when nothing was read: the pool became unusable, or an earlier read is stuck.
   */
  async read(
    batches: readonly VmBatch[],
    options: PoolReadOptions,
  ): Promise<StuckRead[] | undefined> {
    const previous = this.#previous;
    const { promise, resolve } = Promise.withResolvers<void>();
    // The next read waits for this one and every earlier one: a read that gives up waiting at its
    // deadline must not let the next run beside a read still in progress (its replies would be
    // taken for the next read's VMs).
    this.#previous = previous.then(() => promise);
    try {
      if (!await this.#waitTurn(previous, options.signal)) return undefined;
      if (!this.usable) return undefined;
      if (options.signal.aborted || batches.length === 0) return [];
      if (batches.length > LISTS_PER_CHECK) {
        await this.#sendListsAhead(batches);
        if (options.signal.aborted) return [];
      }
      return await this.#read(batches, options);
    } finally {
      resolve();
    }
  }

  /**
   * Waits for the earlier reads to end or the deadline to pass.
   *
   * @returns False when the read in progress made no progress for {@linkcode STALL_MS}: a scrape
   *   with a shorter deadline than the stuck one's would otherwise get nothing at all.
   */
  async #waitTurn(previous: Promise<unknown>, signal: AbortSignal): Promise<boolean> {
    let seen = this.#progressMark();
    while (!await untilAbortedOrDone(previous, { signal, timeoutMs: STALL_MS })) {
      const now = this.#progressMark();
      if (now !== "" && now === seen) return false;
      seen = now;
    }
    return true;
  }

  /**
   * Where the read in progress is: the VM and file of each Worker inside a file (one starting up
   * or between VMs is not stuck).
   */
  #progressMark(): string {
    return this.#inFlight.filter((slot) =>
      slot.pending.length > 0 && Atomics.load(slot.progress, PROGRESS.file) >= 0
    ).map((slot) =>
      `${slot.pending.length}:${Atomics.load(slot.progress, PROGRESS.vm)}:${
        Atomics.load(slot.progress, PROGRESS.file)
      }`
    ).join(" ");
  }

  #read(batches: readonly VmBatch[], options: PoolReadOptions): Promise<StuckRead[]> {
    const results = new OrderedResults(batches.length, options.onResult);
    const asked = this.#sendLists(batches);
    const { promise, resolve } = Promise.withResolvers<StuckRead[]>();
    const finish = (stuck: StuckRead[]): void => {
      this.#inFlight = [];
      options.signal.removeEventListener("abort", onAbort);
      for (const slotIndex of asked.keys()) {
        const slot = this.#slots[slotIndex];
        if (slot !== undefined) slot.onReply = undefined;
      }
      resolve(stuck);
    };
    const onAbort = (): void => {
      results.flush();
      finish(this.#abandonLate(asked.keys(), batches));
    };
    for (const [slotIndex, list] of asked) {
      const slot = this.#slots[slotIndex]!;
      slot.asked = list;
      slot.pending = list.slice();
      slot.onReply = (reply) => {
        // Replies come in the order asked: the first batch still pending is this one.
        const batch = reply.kind === "vm" ? slot.pending.shift() : undefined;
        if (batch === undefined) return;
        results.put(batch, reply as StatFilesResult);
        if (results.complete) finish([]);
      };
      this.#post(slot, { kind: "read", vms: list.map((i) => batches[i]!.key) });
    }
    this.#inFlight = [...asked.keys()].map((i) => this.#slots[i]!);
    options.signal.addEventListener("abort", onAbort, { once: true });
    return promise;
  }

  /**
   * Sends each Worker the path lists it lacks or has in an older version.
   *
   * @returns The batches to ask of each slot, in order.
   */
  #sendLists(batches: readonly VmBatch[]): Map<number, number[]> {
    const asked = new Map<number, number[]>();
    batches.forEach((batch, index) => {
      const slotIndex = this.#sendList(batch);
      let list = asked.get(slotIndex);
      if (list === undefined) asked.set(slotIndex, list = []);
      list.push(index);
    });
    return asked;
  }

  /**
   * Sends a large host's path lists ahead of its read, letting the event loop run every few
   * milliseconds: at 20,000 VMs every scrape cut at its deadline leaves its Workers owing answers,
   * so they are replaced and the next scrape sends all 20,000 lists again, over a second of
   * copying in one piece. A read of a few VMs sends its lists as it asks, in one go.
   */
  async #sendListsAhead(batches: readonly VmBatch[]): Promise<void> {
    for (const [index, batch] of batches.entries()) {
      if (index % LISTS_PER_CHECK === 0 && sliceSpent()) await yieldToEventLoop();
      this.#sendList(batch);
    }
  }

  /** Sends the VM's path list to its Worker unless it has it. */
  #sendList(batch: VmBatch): number {
    const slotIndex = this.#assign(batch);
    const slot = this.#slot(slotIndex);
    const vm = this.#vms.get(batch.key)!;
    if (vm.sent !== batch.paths || vm.sentTo !== slot.worker) {
      slot.files += batch.paths.length - vm.files;
      vm.files = batch.paths.length;
      vm.sent = batch.paths;
      vm.sentTo = slot.worker;
      this.#post(slot, { kind: "paths", vm: batch.key, paths: batch.paths });
    }
    return slotIndex;
  }

  /** The slot of a VM, chosen when it is first seen: the one with the fewest files. */
  #assign(batch: VmBatch): number {
    const known = this.#vms.get(batch.key);
    if (known !== undefined) return known.slot;
    let best = 0;
    for (let i = 1; i < this.#slots.length; i++) {
      if ((this.#slots[i]?.files ?? 0) < (this.#slots[best]?.files ?? 0)) best = i;
    }
    this.#vms.set(batch.key, { slot: best, files: 0, sent: undefined, sentTo: undefined });
    return best;
  }

  /** The slot's Worker, started if it has none. */
  #slot(index: number): Slot {
    const existing = this.#slots[index];
    if (existing !== undefined) return existing;
    this.#started = true;
    const worker = this.#starter.start(`kvm_stat reader ${index}`);
    const progress = new Int32Array(new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT));
    Atomics.store(progress, PROGRESS.file, -1);
    Atomics.store(progress, PROGRESS.vm, -1);
    const files = [...this.#vms.values()].reduce(
      (n, vm) => vm.slot === index ? n + vm.files : n,
      0,
    );
    const slot: Slot = { worker, progress, files, asked: [], pending: [], onReply: undefined };
    worker.onmessage = (event: MessageEvent<ReaderReply>) => {
      if (event.data.kind === "collected") this.#collections++;
      else slot.onReply?.(event.data);
    };
    // A Worker that fails (it cannot: it catches every read error) is replaced on the next read.
    worker.onerror = (event) => {
      event.preventDefault();
      this.#abandon(index, 0);
    };
    const { maxBytes, collectAfterMs } = this.#options;
    this.#post(slot, { kind: "init", progress, maxBytes, collectAfterMs });
    this.#slots[index] = slot;
    return slot;
  }

  #post(slot: Slot, request: ReaderRequest): void {
    slot.worker.postMessage(request);
  }

  /** At the deadline: abandons every slot that still owes answers. */
  #abandonLate(slots: Iterable<number>, batches: readonly VmBatch[]): StuckRead[] {
    const stuck: StuckRead[] = [];
    for (const index of slots) {
      const slot = this.#slots[index];
      if (slot === undefined || slot.pending.length === 0) continue;
      // Where the Worker is, not the first batch unanswered here: its answers for earlier VMs may
      // still be queued to this thread.
      const batch = slot.asked[Atomics.load(slot.progress, PROGRESS.vm)];
      const file = Atomics.load(slot.progress, PROGRESS.file);
      const since = Atomics.load(slot.progress, PROGRESS.since);
      const stuckFor = (Date.now() % CLOCK_WRAP - since + CLOCK_WRAP) % CLOCK_WRAP;
      const released = this.#abandon(index, slot.pending.length);
      if (
        batch !== undefined && file >= 0 && file < batches[batch]!.paths.length &&
        stuckFor >= BLAME_MS
      ) {
        stuck.push({ batch, file, released });
      }
    }
    return stuck;
  }

  /**
   * Stops the slot's Worker before its next file and empties the slot; ends the Worker with its
   * last answer to the read (`owed` VM replies, or "cancelled"), as only then is it out of its
   * blocked syscall: an earlier reply, queued before the deadline, says nothing of that.
   */
  #abandon(index: number, owed: number): Promise<void> {
    const slot = this.#slots[index];
    if (slot === undefined) return Promise.resolve();
    this.#slots[index] = undefined;
    slot.onReply = undefined;
    Atomics.store(slot.progress, PROGRESS.cancel, 1);
    const { worker } = slot;
    const { promise, resolve } = Promise.withResolvers<void>();
    const end = (): void => {
      worker.terminate();
      this.#abandoned.delete(worker);
      resolve();
    };
    this.#abandoned.set(worker, end);
    if (owed === 0) end();
    worker.onmessage = (event: MessageEvent<ReaderReply>) => {
      if (event.data.kind === "collected") return;
      if (event.data.kind === "cancelled" || --owed === 0) end();
    };
    worker.onerror = (event) => {
      event.preventDefault();
      end();
    };
    return promise;
  }

  /** Ends every Worker, abandoned ones too. Reads after this do nothing. */
  close(): void {
    this.#closed = true;
    for (const [index, slot] of this.#slots.entries()) {
      if (slot === undefined) continue;
      slot.worker.terminate();
      this.#slots[index] = undefined;
    }
    for (const end of [...this.#abandoned.values()]) end();
    this.#starter.close();
  }
}

/**
 * Waits for `promise` (which never rejects) or for `signal` to abort, for at most `timeoutMs`.
 *
 * @returns True when the promise settled or the signal aborted, false when the time ran out.
 */
function untilAbortedOrDone(
  promise: Promise<unknown>,
  { signal, timeoutMs }: { signal: AbortSignal; timeoutMs: number },
): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(true);
  return new Promise((resolve) => {
    const settle = (done: boolean): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(done);
    };
    const onAbort = (): void => settle(true);
    const timer = setTimeout(() => settle(false), timeoutMs);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(onAbort, onAbort);
  });
}
