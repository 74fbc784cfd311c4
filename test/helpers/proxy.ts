/**
 * A loopback TCP proxy for partition tests: it forwards every connection made to it to `target`
 * until freeze(), which stops passing bytes both ways while both sockets stay open (no FIN, no
 * RST: what a silent network partition looks like to both ends); thaw() lets them through again.
 */
import { createServer, connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

export interface Proxy {
  /** the loopback port to connect to */
  port: number;
  /** connections accepted so far */
  connections(): number;
  /** stop forwarding (both ways, every connection, new ones too); sockets stay open */
  freeze(): void;
  /** forward again, what was held back first */
  thaw(): void;
  /**
   * The connections open now go silent for good (a NAT or firewall that lost their state: their
   * packets are dropped, nothing is closed); connections made after it are forwarded as usual.
   */
  cutOff(): void;
  /** The connections open now are closed at once (both sockets destroyed); new ones are forwarded as usual. */
  reset(): void;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const pipes: { flush(): void }[] = [];
  let frozen = false;
  /** sockets of connections cut off: read no more, written no more, never closed */
  const silenced = new Set<Socket>();
  let accepted = 0;

  /** from → to, holding back (and no longer reading) while frozen or while `to` is full */
  const pipe = (from: Socket, to: Socket) => {
    const held: Buffer[] = [];
    from.on('data', (d: Buffer) => {
      if (frozen || silenced.has(from)) {
        // what was read before the pause took hold: kept for thaw(), never written now
        held.push(d);
        from.pause();
        return;
      }
      if (!to.write(d)) from.pause();
    });
    to.on('drain', () => {
      if (!frozen && !silenced.has(from)) from.resume();
    });
    from.on('end', () => to.end());
    return {
      flush() {
        if (silenced.has(from)) return;
        for (const d of held.splice(0)) to.write(d);
        from.resume();
      },
    };
  };

  const server = createServer((client) => {
    accepted++;
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    if (frozen) {
      client.pause();
      upstream.pause();
    }
    pipes.push(pipe(client, upstream), pipe(upstream, client));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => accepted,
    freeze() {
      frozen = true;
      for (const s of sockets) s.pause();
    },
    thaw() {
      frozen = false;
      for (const p of pipes) p.flush();
    },
    cutOff() {
      for (const s of sockets) {
        silenced.add(s);
        s.pause();
      }
    },
    reset() {
      for (const s of [...sockets]) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
