/**
 * What kind of executable a file is, read from its header bytes alone (no `file` command, which
 * a fresh machine may lack): ELF, Mach-O or PE, and for which CPU. `bun run release` checks each
 * cross-compiled artifact with it, so a wrong --target or a mix-up of names cannot ship.
 *
 *   ELF:    7F 'E' 'L' 'F', class 2 (64-bit), data 1 (little-endian), e_machine (u16 at 18):
 *           0x3E x86-64, 0xB7 AArch64.
 *   Mach-O: magic FEEDFACF (64-bit, stored little-endian: CF FA ED FE), cputype (u32 at 4):
 *           0x01000007 x86_64, 0x0100000C arm64.
 *   PE:     'MZ', e_lfanew (u32 at 0x3C) → 'PE\0\0', then Machine (u16): 0x8664 x64, 0xAA64 arm64.
 */
export type Format = "elf" | "macho" | "pe";
export type Arch = "x64" | "arm64";

export type Identified = { format: Format; arch: Arch } | { error: string };

/** Bytes to read from a file's start: enough for every header above (PE's e_lfanew is small). */
export const HEADER_BYTES = 4096;

// Maps, so the codes stay in hex as the formats' specifications write them (the linter writes an
// object's number keys in decimal).
const ELF_MACHINES = new Map<number, Arch>([
  [0x3e, "x64"],
  [0xb7, "arm64"],
]);
const MACHO_CPUS = new Map<number, Arch>([
  [0x01000007, "x64"],
  [0x0100000c, "arm64"],
]);
const PE_MACHINES = new Map<number, Arch>([
  [0x8664, "x64"],
  [0xaa64, "arm64"],
]);

const hex = (n: number, digits: number) => `0x${n.toString(16).toUpperCase().padStart(digits, "0")}`;

/** Identifies an executable from its first bytes (HEADER_BYTES of them suffice). */
export function identify(bytes: Uint8Array): Identified {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const has = (n: number) => bytes.byteLength >= n;

  if (has(4) && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46) {
    if (!has(20)) return { error: "ELF header cut short" };
    if (bytes[4] !== 2) return { error: `ELF class ${bytes[4]}, not 64-bit` };
    if (bytes[5] !== 1) return { error: "ELF is big-endian" };
    const machine = view.getUint16(18, true);
    const arch = ELF_MACHINES.get(machine);
    return arch ? { format: "elf", arch } : { error: `ELF for an unknown machine ${hex(machine, 4)}` };
  }

  if (has(4) && view.getUint32(0, true) === 0xfeedfacf) {
    if (!has(8)) return { error: "Mach-O header cut short" };
    const cpu = view.getUint32(4, true);
    const arch = MACHO_CPUS.get(cpu);
    return arch ? { format: "macho", arch } : { error: `Mach-O for an unknown CPU type ${hex(cpu, 8)}` };
  }
  if (has(4) && (view.getUint32(0, true) === 0xfeedface || view.getUint32(0, false) === 0xcafebabe)) {
    return { error: "Mach-O, but 32-bit or universal (fat), not a 64-bit single-architecture file" };
  }

  if (has(2) && bytes[0] === 0x4d && bytes[1] === 0x5a) {
    if (!has(0x40)) return { error: "PE (MZ) header cut short" };
    const peOffset = view.getUint32(0x3c, true);
    if (!has(peOffset + 6)) return { error: `PE signature offset ${peOffset} is beyond the header read` };
    if (view.getUint32(peOffset, false) !== 0x50450000) return { error: "MZ file without a 'PE\\0\\0' signature" };
    const machine = view.getUint16(peOffset + 4, true);
    const arch = PE_MACHINES.get(machine);
    return arch ? { format: "pe", arch } : { error: `PE for an unknown machine ${hex(machine, 4)}` };
  }

  return { error: "not an ELF, Mach-O or PE executable" };
}

/** Identifies the file at `path` from its first HEADER_BYTES bytes. */
export async function identifyFile(path: string): Promise<Identified> {
  const bytes = new Uint8Array(await Bun.file(path).slice(0, HEADER_BYTES).arrayBuffer());
  return identify(bytes);
}

/** "ELF x86-64", "Mach-O arm64", "PE x64": for messages and the release summary. */
export function describe(format: Format, arch: Arch): string {
  const formats: Record<Format, string> = { elf: "ELF", macho: "Mach-O", pe: "PE" };
  const arches: Record<Format, Record<Arch, string>> = {
    elf: { x64: "x86-64", arm64: "aarch64" },
    macho: { x64: "x86_64", arm64: "arm64" },
    pe: { x64: "x64 (0x8664)", arm64: "arm64 (0xAA64)" },
  };
  return `${formats[format]} ${arches[format][arch]}`;
}
