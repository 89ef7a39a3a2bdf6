// Process entry for the compiled CLI (bin/isle.js and tests spawn this file).
import { run } from './main.js';

process.exitCode = await run(process.argv);
