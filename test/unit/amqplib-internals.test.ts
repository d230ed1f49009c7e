/**
 * rpc/amqplib-internals.ts reaches into amqplib's private fields, written against one version.
 * These fail on a version bump, on purpose: read the internals again (socketOf, the field-table
 * guard, the handshake wrapper), then move VERIFIED_AMQPLIB.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  AMQPLIB_VERSION,
  FIELD_TABLES_GUARDED,
  HANDSHAKE_REASONS,
  INTERNALS_PROBLEM,
  VERIFIED_AMQPLIB,
  versionProblem,
} from "../../src/rpc/amqplib-internals.ts";
import { OUTLET_FALLBACK_MESSAGE } from "../../src/rpc/outlet.ts";

const packageJson = readFileSync(resolve(import.meta.dir, "../../package.json"), "utf8");
const pinned = (JSON.parse(packageJson) as { dependencies: Record<string, string> }).dependencies.amqplib;

test("the amqplib pinned in package.json is the one whose internals were read", () => {
  expect(pinned).toBe(VERIFIED_AMQPLIB);
});

test("the amqplib installed is the one pinned, and every use of its internals is on", () => {
  expect(AMQPLIB_VERSION).toBe(VERIFIED_AMQPLIB);
  expect(INTERNALS_PROBLEM).toBeUndefined();
  expect(FIELD_TABLES_GUARDED).toBe(true);
  expect(HANDSHAKE_REASONS).toBe(true);
});

test("any other version is refused, and the fallback's log line says which", () => {
  expect(versionProblem(VERIFIED_AMQPLIB)).toBeUndefined();
  for (const other of ["2.3.2", "2.4.0", "3.0.0", "2.3.1-beta.1"]) {
    const said = `amqplib ${other} is not ${VERIFIED_AMQPLIB}, the version whose internals fibrpc uses`;
    expect(versionProblem(other)).toBe(said);
  }
  expect(OUTLET_FALLBACK_MESSAGE).toContain("frame writer could not attach");
});
