import pkg from "../package.json" with { type: "json" };

/** The version from package.json, inlined into the compiled binary at build time. */
export const version: string = pkg.version;
