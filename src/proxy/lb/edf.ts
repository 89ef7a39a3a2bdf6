/**
 * Earliest-deadline-first scheduler, as Envoy uses for weighted round robin and locality
 * picking: each entry's next deadline advances by 1/weight when picked, so picks interleave
 * smoothly in proportion to weight and the sequence is deterministic.
 */
export class EdfScheduler<T> {
  private heap: { item: T; weight: number; deadline: number; seq: number }[] = [];
  private now = 0;
  private seq = 0;

  add(item: T, weight: number): void {
    if (!(weight > 0)) return;
    this.push({ item, weight, deadline: this.now + 1 / weight, seq: this.seq++ });
  }

  get size(): number {
    return this.heap.length;
  }

  /** The next item; `reweight` (if given) sets its weight for the following round. */
  pick(reweight?: (item: T) => number): T | undefined {
    const top = this.heap[0];
    if (!top) return undefined;
    this.popTop();
    this.now = top.deadline;
    const w = reweight ? reweight(top.item) : top.weight;
    if (w > 0) this.push({ item: top.item, weight: w, deadline: this.now + 1 / w, seq: this.seq++ });
    return top.item;
  }

  private less(i: number, j: number): boolean {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
  }

  private swap(i: number, j: number): void {
    const t = this.heap[i]!;
    this.heap[i] = this.heap[j]!;
    this.heap[j] = t;
  }

  private push(e: { item: T; weight: number; deadline: number; seq: number }): void {
    this.heap.push(e);
    let i = this.heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  private popTop(): void {
    const last = this.heap.pop()!;
    if (this.heap.length === 0) return;
    this.heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.heap.length && this.less(l, m)) m = l;
      if (r < this.heap.length && this.less(r, m)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}
