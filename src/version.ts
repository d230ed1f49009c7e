import pkg from "../package.json" with { type: "json" };

/** The version from package.json, inlined into the compiled binary at build time. */
export const version: string = pkg.version;

/**
 * The git commit the binary was built from. Builds define it (`--define
 * process.env.FIBRPC_COMMIT=...`), so the compiled binary carries a constant; running the source
 * with bun reads the variable, and "unknown" says nobody set it.
 */
export const commit: string = process.env.FIBRPC_COMMIT || "unknown";

/** The Bun runtime compiled into the binary (for a source run, the bun running it). */
export const bunVersion: string = Bun.version;

/** What `fibrpc --version` prints: one line, the version second, so `cut -d' ' -f2` gets it. */
export const versionLine =
  `fibrpc ${version} (commit ${commit}, ` + `bun ${bunVersion}, ${process.platform}-${process.arch})`;
