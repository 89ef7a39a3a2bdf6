/** The one xDS client: stream, nonces, ACK/NACK, back-off, versions; decoders plugged in by the owner. */
export * from './client.js';
export * from './resources.js';
