/**
 * Keeps the benchmarks working: runs each part of `npm run bench` at its smoke size (a few seconds
 * each) and checks that it produced its tables. Never asserts on timing or on any measured number.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PARTS, runPart } from './run.js';

describe('bench --smoke', { concurrency: false }, () => {
  for (const name of PARTS) {
    it(`${name} runs at smoke size and prints its tables`, { timeout: 120_000 }, async () => {
      const lines: string[] = [];
      const r = await runPart(name, { smoke: true, log: (s) => lines.push(s) });
      assert.equal(r.name, name);
      assert.match(r.markdown, /\|---/, 'a markdown table');
      assert.ok(r.data !== undefined);
    });
  }
});
