/**
 * A TCP proxy between fibrpc and the broker that a test can cut: every connection through it is
 * closed at once, as a network failure or an operator closing connections would. The broker
 * itself is left untouched.
 */
import { connect, createServer, type Socket } from "node:net";

export interface Proxy {
  port: number;
  /** Destroys every connection currently open through the proxy; returns how many. */
  cut(): number;
  /** Refuse (true) or accept (false) new connections, to hold an outage open. */
  refuse(on: boolean): void;
  /** How many connections were refused so far (each is one connection attempt of a client). */
  readonly refused: number;
  close(): Promise<void>;
}

/** `listenPort`: the port to listen on (default: any free one). */
export async function startProxy(targetPort: number, targetHost = "127.0.0.1", listenPort = 0): Promise<Proxy> {
  const pairs = new Set<[Socket, Socket]>();
  let refusing = false;
  let refused = 0;
  const server = createServer((client) => {
    if (refusing) {
      refused++;
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const teardown = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    for (const socket of pair) {
      socket.on("error", teardown);
      socket.on("close", teardown);
    }
  });
  await new Promise<void>((resolve) => server.listen(listenPort, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  return {
    port: address.port,
    cut() {
      const count = pairs.size;
      for (const [client, upstream] of [...pairs]) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      return count;
    },
    refuse(on) {
      refusing = on;
    },
    get refused() {
      return refused;
    },
    close() {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
