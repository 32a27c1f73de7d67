/** Why a byte sequence is not a valid dqlite message. */
export type ProtocolErrorCode =
  | 'truncated' // the bytes end inside a field
  | 'too_large' // a length or count exceeds a configured or structural bound
  | 'bad_type' // unknown message or value type code
  | 'bad_value' // a field holds a value outside its domain
  | 'bad_version' // unknown protocol version in the handshake
  | 'bad_text'; // a text field has no NUL terminator within the body

/** A malformed or out-of-bounds message, thrown by every encoder and decoder of this folder. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
