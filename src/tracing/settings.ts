/**
 * Tracing's settings, from OpenTelemetry's standard variables (the SDK environment variable
 * specification), read by env-settings.ts from the environment it is given: nothing here reads
 * process.env. Pure, and the result is plain data (structured-cloneable), so that serve's
 * supervisor hands it to each worker, which builds its own tracer provider from it (sdk.ts).
 *
 * Off unless an endpoint is configured (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
 * OTEL_EXPORTER_OTLP_ENDPOINT), whatever else is set; OTEL_SDK_DISABLED=true turns it off even then.
 * The specification's default endpoint (http://localhost:4318) is not used on its own: a CLI run
 * thousands of times a day must not open a connection, and warn, on every `fibrpc call` of a
 * machine with no collector; the issue asks for "off unless configured".
 */

export const OTLP_PROTOCOLS = ["http/protobuf", "http/json"] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** OTEL_TRACES_SAMPLER's values this SDK knows (the specification's, less jaeger_remote and xray). */
export const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export interface TracingSettings {
  /** Where spans are POSTed: the signal-specific URL, as given or made from the base endpoint. */
  url: string;
  protocol: OtlpProtocol;
  sampler: SamplerName;
  /** The ratio for the traceidratio samplers, in [0, 1]. */
  ratio: number;
  /** The resource's attributes: OTEL_RESOURCE_ATTRIBUTES, then service.name from OTEL_SERVICE_NAME. */
  resource: Record<string, string>;
}

/** Tracing's part of a run's environment: the settings if tracing is on, and what was wrong in the variables. */
export interface TracingConfig {
  settings: TracingSettings | undefined;
  /** One line each, for a warning: a value ignored, and what was used instead. */
  problems: string[];
}

/** service.name when OTEL_SERVICE_NAME does not say (nor OTEL_RESOURCE_ATTRIBUTES). */
export const DEFAULT_SERVICE_NAME = "fibrpc";

type Env = Readonly<Record<string, string | undefined>>;

/** A variable's value, trimmed; undefined when unset or empty (the specification treats both alike). */
function value(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** Tracing's settings from `env` (see above). Never throws: a bad value is a problem and a default. */
export function tracingConfig(env: Env): TracingConfig {
  const problems: string[] = [];
  if (value(env, "OTEL_SDK_DISABLED")?.toLowerCase() === "true") return { settings: undefined, problems };
  const url = tracesUrl(env, problems);
  if (url === undefined) return { settings: undefined, problems };
  const protocol = protocolOf(env, problems);
  if (protocol === undefined) return { settings: undefined, problems };
  const { sampler, ratio } = samplerOf(env, problems);
  const resource = resourceAttributes(value(env, "OTEL_RESOURCE_ATTRIBUTES"), problems);
  const serviceName = value(env, "OTEL_SERVICE_NAME");
  if (serviceName !== undefined) resource["service.name"] = serviceName;
  resource["service.name"] ??= DEFAULT_SERVICE_NAME;
  return { settings: { url, protocol, sampler, ratio, resource }, problems };
}

/**
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given; else OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces
 * appended (to its path, after a trailing slash or not). Only http: and https: URLs.
 */
function tracesUrl(env: Env, problems: string[]): string | undefined {
  const signal = value(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const base = value(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  const [name, given] =
    signal !== undefined
      ? ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", signal]
      : base !== undefined
        ? ["OTEL_EXPORTER_OTLP_ENDPOINT", base]
        : [undefined, undefined];
  if (name === undefined || given === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    // Not quoted: what is not a URL may still hold a password.
    problems.push(`${name} is not a URL: tracing is off`);
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    problems.push(`${name} ${JSON.stringify(withoutCredentials(url))} is not an http or https URL: tracing is off`);
    return undefined;
  }
  if (signal !== undefined) return url.href;
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/traces`;
  return url.href;
}

function protocolOf(env: Env, problems: string[]): OtlpProtocol | undefined {
  const signal = value(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
  const name = signal === undefined ? "OTEL_EXPORTER_OTLP_PROTOCOL" : "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
  const given = signal ?? value(env, "OTEL_EXPORTER_OTLP_PROTOCOL");
  if (given === undefined) return "http/protobuf";
  if ((OTLP_PROTOCOLS as readonly string[]).includes(given)) return given as OtlpProtocol;
  // grpc names a collector port that speaks no HTTP: sending http/protobuf there could only fail.
  problems.push(`${name} ${JSON.stringify(given)} is not supported (${OTLP_PROTOCOLS.join(" or ")}): tracing is off`);
  return undefined;
}

function samplerOf(env: Env, problems: string[]): { sampler: SamplerName; ratio: number } {
  const given = value(env, "OTEL_TRACES_SAMPLER")?.toLowerCase();
  let sampler: SamplerName = "parentbased_always_on";
  if (given !== undefined) {
    if ((SAMPLERS as readonly string[]).includes(given)) sampler = given as SamplerName;
    else problems.push(`OTEL_TRACES_SAMPLER ${JSON.stringify(given)} is not supported: using ${sampler}`);
  }
  const arg = value(env, "OTEL_TRACES_SAMPLER_ARG");
  let ratio = 1;
  if (arg !== undefined && sampler.endsWith("traceidratio")) {
    const parsed = Number(arg);
    if (Number.isFinite(parsed) && parsed >= 0 && parsed <= 1) ratio = parsed;
    else problems.push(`OTEL_TRACES_SAMPLER_ARG ${JSON.stringify(arg)} is not a ratio from 0 to 1: using 1`);
  }
  return { sampler, ratio };
}

/**
 * OTEL_RESOURCE_ATTRIBUTES: `key=value` pairs separated by commas, each side percent-decoded (the
 * W3C Baggage octet range). A malformed value is discarded whole, as the specification says.
 */
export function resourceAttributes(given: string | undefined, problems: string[]): Record<string, string> {
  // No prototype: a key "__proto__" is a key like any other.
  const attributes: Record<string, string> = Object.create(null);
  if (given === undefined) return attributes;
  for (const pair of given.split(",")) {
    if (pair.trim() === "") continue;
    const eq = pair.indexOf("=");
    const key = eq < 0 ? undefined : decode(pair.slice(0, eq).trim());
    const val = eq < 0 ? undefined : decode(pair.slice(eq + 1).trim());
    if (key === undefined || key === "" || val === undefined) {
      problems.push(`OTEL_RESOURCE_ATTRIBUTES has a malformed pair ${JSON.stringify(pair)}: all of it is ignored`);
      return Object.create(null);
    }
    attributes[key] = val;
  }
  return attributes;
}

function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/**
 * The --otlp-endpoint option's value: an http or https URL, the collector's base (as
 * OTEL_EXPORTER_OTLP_ENDPOINT); what is wrong with it otherwise, for a usage error.
 */
export function otlpEndpointProblem(given: string): string | undefined {
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    return `${JSON.stringify(given)} is not a URL`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return `${JSON.stringify(given)} is not an http or https URL`;
  // Credentials in a URL end up in logs and error messages; a collector takes them as headers.
  if (url.username !== "" || url.password !== "")
    return "it must not hold credentials: give them in OTEL_EXPORTER_OTLP_HEADERS";
  return undefined;
}

/**
 * The environment as tracing reads it, with the --otlp-endpoint option's value, when given, in place of
 * both OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: a flag wins over the variables.
 * It is a base URL (/v1/traces appended), or the traces URL itself.
 */
export function withOtlpEndpoint(env: Env, endpoint: string | undefined): Env {
  if (endpoint === undefined) return env;
  // The traces URL itself (…/v1/traces, as a collector's docs print it) is taken as it is, not doubled.
  const url = new URL(endpoint);
  if (/\/v1\/traces\/?$/.test(url.pathname)) {
    // Without a trailing slash, which some collectors answer with 404.
    url.pathname = url.pathname.replace(/\/$/, "");
    return { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: undefined, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url.href };
  }
  return { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined };
}

/** A URL as a message may show it: no user name or password (the masker knows only amqp URLs). */
function withoutCredentials(url: URL): string {
  const shown = new URL(url.href);
  shown.username = "";
  shown.password = "";
  return shown.href;
}
