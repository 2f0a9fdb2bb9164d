// Child processes of the local tooling (`kv up`, tests, benchmarks): spawn a
// Node script with an IPC channel, wait for the message that says it is
// ready, and stop it with SIGTERM, then SIGKILL if it does not exit in time.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface SpawnOptions {
  /** Extra node flags (e.g. --perf-basic-prof); cluster workers inherit them. */
  readonly nodeArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Own process group: a terminal's Ctrl-C reaches only the parent, which then stops children in order. */
  readonly detached?: boolean;
  /** Called for every line the child prints on stdout or stderr. */
  readonly onLine?: (line: string) => void;
}

export type Message = Record<string, unknown>;

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class Child {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every IPC message received so far, oldest first. */
  readonly messages: Message[] = [];
  /** The last lines the child printed (for error messages). */
  readonly #tail: string[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #exited: Promise<ExitStatus>;

  constructor(script: string, args: readonly string[], o: SpawnOptions = {}) {
    this.child = spawn(process.execPath, [...(o.nodeArgs ?? []), script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: o.env ?? process.env,
      detached: o.detached ?? false,
    });
    this.pid = this.child.pid!;
    this.#exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        resolve({ code, signal });
        this.#wake();
      }),
    );
    this.child.on('message', (m: Message) => {
      this.messages.push(m);
      this.#wake();
    });
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        this.#tail.push(line);
        if (this.#tail.length > TAIL_LINES) this.#tail.shift();
        o.onLine?.(line);
      });
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines of output, for an error message. */
  get tail(): string {
    return this.#tail.join('\n');
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /** The first message (already received or still to come) that matches; rejects on exit or timeout. */
  waitFor(pred: (m: Message) => boolean, timeoutMs: number, what = 'a message'): Promise<Message> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.messages.find(pred);
        if (m) {
          done();
          resolve(m);
        } else if (!this.alive) {
          done();
          reject(
            new Error(
              `process ${this.pid} exited (code ${this.child.exitCode}, signal ${this.child.signalCode}) before ${what}; its last output:\n${this.tail}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} from process ${this.pid} within ${timeoutMs} ms; its last output:\n${this.tail}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The `{type: 'ready'}` message every role sends once it serves. */
  ready(timeoutMs: number): Promise<Message> {
    return this.waitFor((m) => m['type'] === 'ready', timeoutMs, 'the ready message');
  }

  exited(): Promise<ExitStatus> {
    return this.#exited;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves once the process has exited. */
  async stop(timeoutMs: number): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const force = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    force.unref();
    await this.#exited;
    clearTimeout(force);
  }
}

const TAIL_LINES = 50;
