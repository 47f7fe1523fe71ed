import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

/** pino: pretty in a terminal, JSON otherwise (for log shippers and tests). */
export function createLogger(level: string, name?: string): Logger {
  const base = name ? { name } : {};
  if (process.stdout.isTTY) {
    return pino({ level, ...base }, pretty({ colorize: true, sync: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' }));
  }
  return pino({ level, ...base });
}
