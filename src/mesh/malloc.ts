/**
 * glibc's malloc keeps large freed blocks instead of returning them to the system: a block above
 * the mmap threshold (128 KB at start) is mmapped, but freeing one raises the threshold to its
 * size (glibc's "dynamic mmap threshold"), so later large blocks come from the heap arenas and
 * stay resident after they are freed. A control plane writes hundreds of KB per xDS response
 * (CDS/EDS/RDS at 1,000 services) to thousands of proxies; those transient buffers kept about
 * 600 KB of RSS per connected proxy resident after the pushes were over (issue 13: 906 KB RSS per
 * proxy at 300 proxies, of which 232 KB heap).
 *
 * `malloc_trim(0)` returns the free pages of every arena. Pinning the threshold instead
 * (`mallopt(M_MMAP_THRESHOLD)`) was measured too: RSS as low, but every response buffer became a
 * fresh mapping whose pages fault in on the copy, and copies took 4× the CPU during pushes.
 *
 * Linux with glibc only, through koffi (FFI); elsewhere (musl, macOS) there is no trimmer.
 */
import { createRequire } from 'node:module';

/** `malloc_trim(0)` of this process's libc, or undefined where there is none. */
export function mallocTrimmer(): (() => void) | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
    return () => void trim(0);
  } catch {
    return undefined;
  }
}
