/**
 * The dev cluster's console: each node prints one JSON object per line; here they become levelled pino records
 * of one logger, pretty and coloured on a terminal (pino-pretty), JSON lines otherwise. Quiet by default:
 * warnings and errors only; `--verbose` adds the lifecycle and link events, `--log-level debug` the requests.
 */
import { pino, type Level, type Logger } from 'pino';
import pretty from 'pino-pretty';

/** Levels `--log-level` accepts. */
export const devLogLevels = ['error', 'warn', 'info', 'debug'] as const;
/** A level `--log-level` accepts. */
export type DevLogLevel = (typeof devLogLevels)[number];
/** Characters of a node's line that is not JSON (a crash's stack, say) kept in one record. */
export const rawLineCharsMax = 2_000;

/** A logger writing to `destination` (a stream with a file descriptor, e.g. process.stderr). */
export function devLogger(level: DevLogLevel, destination: NodeJS.WritableStream & { isTTY?: boolean }): Logger {
  const stream = destination.isTTY
    ? // One line per record, the node first: three nodes' records interleave.
      pretty({
        destination,
        colorize: true,
        sync: true,
        singleLine: true,
        ignore: 'pid,hostname,node',
        messageFormat: '{node} {msg}',
        translateTime: 'HH:MM:ss.l',
        errorLikeObjectKeys: ['err'],
      })
    : destination;
  return pino({ level, base: null, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}

/**
 * The level of a node's event: failures and refusals warn, request logs are debug, the rest is info. The
 * daemon's events carry no level yet; when they do (`level`), it wins.
 */
export function levelOf(event: Readonly<Record<string, unknown>>): Level {
  const stated = event.level;
  if (typeof stated === 'string' && (devLogLevels as readonly string[]).includes(stated)) return stated as Level;
  const name = typeof event.event === 'string' ? event.event : '';
  if (name === 'http_request') return typeof event.status === 'number' && event.status >= 500 ? 'warn' : 'debug';
  if (event.error !== undefined || event.code !== undefined || /fail|error|reject|refus|denied|violation|crash/i.test(name)) return 'warn';
  return 'info';
}

/** Logs one line a node printed, under the node's name. */
export function logNodeLine(logger: Logger, node: string, line: string, stream: 'stdout' | 'stderr'): void {
  let event: Record<string, unknown> | null = null;
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) event = parsed as Record<string, unknown>;
  } catch {
    // Not JSON: a stack trace or a message on stderr.
  }
  if (event === null) {
    logger[stream === 'stderr' ? 'error' : 'info']({ node }, line.slice(0, rawLineCharsMax));
    return;
  }
  // The node's own time and identity are said once, by the record's time and `node`.
  const { time: _time, node: _node, region: _region, event: name, level: _level, ...fields } = event;
  logger[levelOf(event)]({ node, ...fields }, typeof name === 'string' ? name : 'event');
}
