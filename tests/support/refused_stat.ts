/**
 * A real debugfs stat file the kernel refuses (EPERM under lockdown), for tests of how refusals
 * are told apart, and why such a test is skipped where there is none.
 *
 * @module
 */

/** A 0644 debugfs stat: lockdown refuses it. */
export const REFUSED_STAT = "/sys/kernel/debug/kvm/exits";

/**
 * Why the tests of a kernel refusal cannot run here, or undefined when {@linkcode REFUSED_STAT}
 * is refused with EPERM.
 *
 * @returns The reason, or undefined.
 */
export function refusedStatSkip(): string | undefined {
  try {
    Deno.readTextFileSync(REFUSED_STAT);
    return `${REFUSED_STAT} is readable (no kernel lockdown)`;
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied) return undefined;
    return `${REFUSED_STAT}: ${(error as Error).message}`;
  }
}
