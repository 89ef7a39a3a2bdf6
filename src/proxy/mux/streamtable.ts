/**
 * A connection's open streams by id, for both mux ends (ADR 0150). Not a `Map`: a long-lived
 * `Map` that gets an insert and a delete per request is rebuilt by V8 every few requests (its
 * deleted entries fill the table), and an *old-generation* Map's rebuilt table is allocated in old
 * space again, while the obsolete table keeps a pointer to its successor and the entries it still
 * held (the streams in flight at that moment). Those dead old tables make every in-flight
 * request's objects survive scavenges, be promoted and die in old space: the sidecar's "slow GC
 * mode" (≈ 25–35 % of the young generation surviving each scavenge, a mark-compact every ≈ 10
 * scavenges) once the connection's Map happened to be promoted, for the connection's life.
 *
 * Here the slots are one array that is never rebuilt while it is big enough, and a slot is
 * cleared when its stream ends, so nothing of a finished request stays reachable from it.
 * Open addressing on the id (ids are odd and mostly consecutive, so `id >>> 1` spreads them),
 * linear probing, backward-shift deletion (no tombstones).
 */
export class StreamTable<T> {
  private ids: Uint32Array;
  private vals: (T | undefined)[];
  private mask: number;
  private count = 0;

  constructor() {
    const c = 16;
    this.ids = new Uint32Array(c);
    this.vals = new Array<T | undefined>(c).fill(undefined);
    this.mask = c - 1;
  }

  get size(): number {
    return this.count;
  }

  private slot(id: number): number {
    let i = (id >>> 1) & this.mask;
    const ids = this.ids;
    while (ids[i] !== 0 && ids[i] !== id) i = (i + 1) & this.mask;
    return i;
  }

  get(id: number): T | undefined {
    // 0 marks an empty slot (and is the connection's id, never a stream's).
    if (this.count === 0 || id === 0) return undefined;
    const i = this.slot(id);
    return this.ids[i] === id ? this.vals[i] : undefined;
  }

  /** `id` is a stream id as on the wire: a u32 other than 0 (the connection's). */
  set(id: number, v: T): void {
    if (!(Number.isInteger(id) && id > 0 && id <= 0xffffffff)) throw new RangeError(`stream id ${id} is not a stream's`);
    if ((this.count + 1) * 2 > this.ids.length) this.grow();
    const i = this.slot(id);
    if (this.ids[i] !== id) {
      this.ids[i] = id;
      this.count++;
    }
    this.vals[i] = v;
  }

  delete(id: number): boolean {
    if (this.count === 0 || id === 0) return false;
    const ids = this.ids;
    const vals = this.vals;
    const mask = this.mask;
    let i = this.slot(id);
    if (ids[i] !== id) return false;
    this.count--;
    // Backward shift: move later members of the probe run into the hole so lookups still find them.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const k = ids[j]!;
      if (k === 0) break;
      const home = (k >>> 1) & mask;
      // k may move to i when its home is not cyclically within (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        ids[i] = k;
        vals[i] = vals[j];
        i = j;
      }
    }
    ids[i] = 0;
    vals[i] = undefined;
    return true;
  }

  /** The open streams, by id (a copy: callers may delete while going through it). */
  entries(): [number, T][] {
    const out: [number, T][] = [];
    const ids = this.ids;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== 0) out.push([ids[i]!, this.vals[i]!]);
    return out.sort((a, b) => a[0] - b[0]);
  }

  values(): T[] {
    return this.entries().map((e) => e[1]);
  }

  clear(): void {
    this.ids.fill(0);
    this.vals.fill(undefined);
    this.count = 0;
  }

  private grow(): void {
    const oldIds = this.ids;
    const oldVals = this.vals;
    const c = oldIds.length * 2;
    this.ids = new Uint32Array(c);
    this.vals = new Array<T | undefined>(c).fill(undefined);
    this.mask = c - 1;
    this.count = 0;
    for (let i = 0; i < oldIds.length; i++) if (oldIds[i] !== 0) this.set(oldIds[i]!, oldVals[i]!);
    // The old array may sit in old space until a mark-compact: it must not keep streams alive.
    oldVals.fill(undefined);
  }
}
