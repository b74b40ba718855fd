// Runs LangGraph's checkpoint validation suite (test/checkpoint_validation.vitest.ts,
// compiled by tsc into dist/test); the other tests run under node --test.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["dist/test/*.vitest.js"],
    exclude: ["**/node_modules/**"],
    globals: true,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
