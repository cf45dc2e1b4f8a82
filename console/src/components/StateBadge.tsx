import type { RunState } from "../types";

/** A run's state as a coloured badge (the word is always written: colour is not the only cue). */
export function StateBadge({ state, live = false }: { state: RunState; live?: boolean }) {
  return (
    <span
      className={`badge state-${state}`}
      data-testid="state-badge"
      role={live ? "status" : undefined}
      aria-live={live ? "polite" : undefined}
    >
      {state}
    </span>
  );
}
