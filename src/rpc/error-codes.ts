/**
 * The codes of a server's error replies, in a module of their own with no imports: rpc/protocol.ts
 * uses them, and the library (index.ts) exports them as ServerErrorCode, whose types must not bring
 * in protocol.ts's (Node's Buffer).
 */
/** Stable, machine-readable error codes a server puts in an error reply. */
export const ErrorCode = {
  EMPTY_REQUEST: "EMPTY_REQUEST",
  REQUEST_TOO_LARGE: "REQUEST_TOO_LARGE",
  INVALID_UTF8: "INVALID_UTF8",
  UNSUPPORTED_CONTENT_TYPE: "UNSUPPORTED_CONTENT_TYPE",
  INVALID_JSON: "INVALID_JSON",
  INVALID_JSON_SHAPE: "INVALID_JSON_SHAPE",
  NOT_AN_INTEGER: "NOT_AN_INTEGER",
  NEGATIVE_N: "NEGATIVE_N",
  N_TOO_LARGE: "N_TOO_LARGE",
  DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
  POISON_REQUEST: "POISON_REQUEST",
  INVALID_PROPERTY: "INVALID_PROPERTY",
  INTERNAL: "INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
