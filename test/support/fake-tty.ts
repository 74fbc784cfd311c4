import { EventEmitter } from 'node:events';

/** What the Reporter needs of a terminal: write, isTTY, columns, and the resize event; what was written is in `out`. */
export class FakeTty extends EventEmitter {
  readonly isTTY: boolean = true;
  out = '';
  constructor(public columns: number) {
    super();
  }
  write(s: string): boolean {
    this.out += s;
    return true;
  }
}

/** A stream that is not a terminal. */
export class FakePipe extends FakeTty {
  override readonly isTTY: boolean = false;
}
