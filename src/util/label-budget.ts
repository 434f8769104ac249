/**
 * A bound on the distinct values a metric label takes from outside input (a bridge peer's chosen name, the
 * channel names a peer announces): the first `cap` distinct values are labels of their own, every later one is
 * counted under OTHER_LABEL. Values are decided once, where they enter (a link opens, a peer's channel becomes a
 * candidate), never per request; a value keeps its label for the process's life, so a series never changes meaning.
 */

/** The label every value past a budget's cap is counted under. */
export const OTHER_LABEL = '(other)';

export class LabelBudget {
  private readonly seen = new Set<string>();

  constructor(readonly cap: number) {}

  /** `value` if it was seen before or there is room for it, else OTHER_LABEL. */
  label(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.cap) return OTHER_LABEL;
    this.seen.add(value);
    return value;
  }
}
