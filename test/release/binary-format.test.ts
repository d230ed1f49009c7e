/**
 * scripts/lib/binary-format.ts reads an executable's format and CPU from its header bytes. Each
 * case is a header built here from the published layouts (ELF, Mach-O, PE), plus the binary this
 * checkout built for this machine.
 */
import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { HEADER_BYTES, identify, identifyFile } from "../../scripts/lib/binary-format.ts";

function elf(machine: number, { cls = 2, data = 1 } = {}): Uint8Array {
  const b = new Uint8Array(64);
  b.set([0x7f, 0x45, 0x4c, 0x46, cls, data, 1]);
  new DataView(b.buffer).setUint16(18, machine, data === 1);
  return b;
}

function macho(magic: number, cpu: number): Uint8Array {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setUint32(0, magic, true);
  v.setUint32(4, cpu, true);
  return b;
}

function pe(machine: number, { lfanew = 0x80, signature = "PE\0\0" } = {}): Uint8Array {
  const b = new Uint8Array(Math.max(lfanew + 24, 64));
  b.set([0x4d, 0x5a]);
  const v = new DataView(b.buffer);
  v.setUint32(0x3c, lfanew, true);
  b.set(
    [...signature].map((c) => c.charCodeAt(0)),
    lfanew,
  );
  v.setUint16(lfanew + 4, machine, true);
  return b;
}

describe("identify", () => {
  test("ELF x86-64 and aarch64", () => {
    expect(identify(elf(0x3e))).toEqual({ format: "elf", arch: "x64" });
    expect(identify(elf(0xb7))).toEqual({ format: "elf", arch: "arm64" });
  });
  test("ELF for another machine, 32-bit or big-endian is refused", () => {
    expect(identify(elf(0x28))).toEqual({ error: "ELF for an unknown machine 0x0028" });
    expect(identify(elf(0x03, { cls: 1 }))).toEqual({ error: "ELF class 1, not 64-bit" });
    expect(identify(elf(0xb7, { data: 2 }))).toEqual({ error: "ELF is big-endian" });
    expect(identify(elf(0x3e).slice(0, 10))).toEqual({ error: "ELF header cut short" });
  });
  test("Mach-O 64 x86_64 and arm64", () => {
    expect(identify(macho(0xfeedfacf, 0x01000007))).toEqual({ format: "macho", arch: "x64" });
    expect(identify(macho(0xfeedfacf, 0x0100000c))).toEqual({ format: "macho", arch: "arm64" });
  });
  test("Mach-O 32-bit, an unknown CPU or a universal file is refused", () => {
    expect(identify(macho(0xfeedfacf, 7))).toEqual({ error: "Mach-O for an unknown CPU type 0x00000007" });
    expect("error" in identify(macho(0xfeedface, 7))).toBe(true);
    const fat = new Uint8Array(8);
    new DataView(fat.buffer).setUint32(0, 0xcafebabe, false);
    expect("error" in identify(fat)).toBe(true);
  });
  test("PE x64 and arm64, the PE header wherever e_lfanew points", () => {
    expect(identify(pe(0x8664))).toEqual({ format: "pe", arch: "x64" });
    expect(identify(pe(0xaa64, { lfanew: 0x200 }))).toEqual({ format: "pe", arch: "arm64" });
  });
  test("MZ without PE, PE for i386, or e_lfanew past the bytes read is refused", () => {
    expect(identify(pe(0x8664, { signature: "NE\0\0" }))).toEqual({ error: "MZ file without a 'PE\\0\\0' signature" });
    expect(identify(pe(0x014c))).toEqual({ error: "PE for an unknown machine 0x014C" });
    const far = pe(0x8664).slice(0, 64);
    new DataView(far.buffer).setUint32(0x3c, HEADER_BYTES * 2, true);
    expect("error" in identify(far)).toBe(true);
  });
  test("anything else, and nothing at all", () => {
    expect(identify(new TextEncoder().encode("#!/bin/sh\necho hi\n"))).toEqual({
      error: "not an ELF, Mach-O or PE executable",
    });
    expect(identify(new Uint8Array(0))).toEqual({ error: "not an ELF, Mach-O or PE executable" });
  });
});

test("identifyFile: ./fibrpc, built here, is this machine's kind of executable", async () => {
  const format = { linux: "elf", darwin: "macho", win32: "pe" }[process.platform as string];
  expect(await identifyFile(resolve(import.meta.dir, "../../fibrpc"))).toEqual({ format, arch: process.arch } as never);
});
