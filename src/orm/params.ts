import { ClientError, type Param } from '../client/index.ts';

/**
 * Checks that what a query builder bound are values the client can send, so a wrong one fails
 * with the parameter's position rather than deep inside the encoder.
 */
export function asParams(values: readonly unknown[]): Param[] {
  return values.map((value, index) => {
    if (
      value === null ||
      typeof value === 'number' ||
      typeof value === 'bigint' ||
      typeof value === 'string' ||
      typeof value === 'boolean' ||
      value instanceof Uint8Array ||
      value instanceof Date
    ) {
      return value;
    }
    const kind = value === undefined ? 'undefined' : typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
    throw new ClientError(
      'bad_argument',
      `parameter ${index + 1} is ${kind}: bind null, a number, bigint, string, boolean, Date or Uint8Array (serialize objects to JSON first)`,
    );
  });
}
