/**
 * Slices of the event loop: long work on the main thread (listing, naming, rendering a large
 * host) runs in slices and lets the event loop run between them, so health checks and other
 * connections are answered while scrapes run.
 *
 * @module
 */

/** How long work may hold the event loop before it lets others (HTTP, QMP timers) run. */
export const SLICE_MS = 10;

/** When the slice now running began: when the last waiter resumed. */
let sliceStart = performance.now();

/**
 * Whether the work running has held the event loop for a slice. One clock for every piece of
 * work, not one per loop: a scrape that goes from listing to naming to rendering in one turn
 * would otherwise hold the loop a slice per stage.
 *
 * @example Usage
 * ```ts
 * import { sliceSpent, yieldToEventLoop } from "./event_loop_slice.ts";
 * for (let i = 0; i < 1000; i++) {
 *   if (sliceSpent()) await yieldToEventLoop();
 * }
 * ```
 *
 * @param sliceMs The slice's length. Default {@linkcode SLICE_MS}.
 * @returns True when it is time to yield; work resumed by I/O may find it so at once.
 */
export function sliceSpent(sliceMs: number = SLICE_MS): boolean {
  return performance.now() - sliceStart > sliceMs;
}

/** Work that yielded and waits for its turn, first come first served; from `head` on. */
let waiting: ((() => void) | undefined)[] = [];
let head = 0;
let turnScheduled = false;

/** One waiter per turn of the event loop: it runs its slice, then the loop polls sockets again. */
function nextTurn(): void {
  turnScheduled = false;
  const resume = waiting[head];
  waiting[head++] = undefined;
  if (head === waiting.length) {
    waiting = [];
    head = 0;
  }
  sliceStart = performance.now();
  resume?.();
  if (waiting.length > head) scheduleTurn();
}

function scheduleTurn(): void {
  if (turnScheduled) return;
  turnScheduled = true;
  // A timer, not a MessageChannel or setImmediate: those come back without polling sockets.
  setTimeout(nextTurn, 0);
}

/**
 * Lets the event loop run everything that is ready (connections, timers) before going on. Work
 * that yields takes turns: one slice per turn of the event loop however many scrapes run, so a
 * health check waits for one slice, not one slice per scrape in flight.
 *
 * @returns A promise that settles on a later turn of the event loop.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    scheduleTurn();
  });
}

/**
 * Starts a fresh slice for work that begins a task of its own (a scrape), unless others are
 * waiting for a turn. The slice clock is reset only when a turn is taken, so after an idle spell
 * it is old: without this, the first check of every scrape would yield at once, a timer's turn
 * lost for a loop that was free.
 */
export function beginSlice(): void {
  if (waiting.length === head) sliceStart = performance.now();
}
