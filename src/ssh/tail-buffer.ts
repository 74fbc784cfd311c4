/** Keeps the last `limit` bytes written to it. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private total = 0;
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.limit <= 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > this.limit * 2) this.compact();
  }

  private compact(): void {
    const all = Buffer.concat(this.chunks);
    const tail = Buffer.from(all.subarray(Math.max(0, all.length - this.limit)));
    this.chunks = [tail];
    this.size = tail.length;
  }

  toString(): string {
    if (this.size > this.limit) this.compact();
    let buf = Buffer.concat(this.chunks);
    if (this.total > this.limit) {
      // The tail may start inside a multi-byte character: drop its orphaned continuation bytes.
      let skip = 0;
      while (skip < 3 && skip < buf.length && ((buf[skip] ?? 0) & 0xc0) === 0x80) skip++;
      buf = buf.subarray(skip);
    }
    return buf.toString('utf8');
  }
}
